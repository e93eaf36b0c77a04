from itertools import groupby

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from core.admin_bases import ReadOnlyAdmin, admin_actor_id, json_block
from quotas.models import Organization

from . import services
from .archive import load_uploaded_plugin
from .manifest import ManifestError
from .models import Plugin, PluginVersion


class PluginUploadForm(forms.Form):
    archive = forms.FileField(required=False, help_text="A .zip with plugin.json at its top level.")
    source = forms.FileField(required=False, label="Module", help_text="Or a single .py file…")
    manifest = forms.FileField(required=False, help_text="…with its plugin.json.")
    signature = forms.CharField(
        required=False,
        max_length=128,
        help_text="The publisher's base64 Ed25519 signature of the files digest (required when the service "
        "only accepts signed plugins).",
    )
    owner = forms.ModelChoiceField(
        Organization.objects.all(), required=False, empty_label="— public —",
        help_text="The organization the plugin is private to; empty for a public plugin.",
    )
    activate = forms.BooleanField(required=False, initial=True, help_text="Make it the version that runs by default.")


class PluginVersionInline(admin.TabularInline):
    model = PluginVersion
    fields = ["version", "sha256", "signed_by", "is_active", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).defer("archive")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "enabled", "owner", "active_version"]
    list_filter = ["enabled", "owner"]
    list_select_related = ["owner"]
    search_fields = ["slug", "name", "description"]
    readonly_fields = ["slug", "created_at", "updated_at"]
    inlines = [PluginVersionInline]
    actions = ["enable", "disable"]

    def get_queryset(self, request):
        active = PluginVersion.objects.filter(plugin=OuterRef("pk"), is_active=True)
        return super().get_queryset(request).annotate(active_version_number=Subquery(active.values("version")[:1]))

    def has_add_permission(self, request):
        return request.user.has_perm("plugins.add_pluginversion")

    def add_view(self, request, form_url="", extra_context=None):
        # A plugin comes into being with its first version, so adding one is
        # uploading; the same form adds later versions of existing plugins.
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PluginUploadForm(request.POST or None, request.FILES or None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                manifest, files = load_uploaded_plugin(
                    archive=data["archive"], source=data["source"], manifest=data["manifest"]
                )
                version = services.install_version(
                    manifest,
                    files,
                    owner=data["owner"],
                    activate=data["activate"],
                    actor_id=admin_actor_id(request),
                    signature=data["signature"],
                )
            except ManifestError as error:
                for problem in error.errors:
                    form.add_error(None, f"{problem['field']}: {problem['message']}")
            else:
                self.message_user(request, f"Stored {version} (sha256 {version.sha256}).", messages.SUCCESS)
                return redirect("admin:plugins_plugin_change", version.plugin.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Upload a plugin version",
            "form": form,
        }
        return TemplateResponse(request, "admin/plugins/plugin/upload.html", context)

    def save_model(self, request, obj, form, change):
        # Adding is uploading (add_view). Who may run a plugin changes only
        # through the services, which record the change in the audit log.
        details = [field for field in form.changed_data if field not in ("enabled", "owner")]
        if details:
            obj.save(update_fields=[*details, "updated_at"])
        actor_id = admin_actor_id(request)
        if "owner" in form.changed_data:
            services.set_plugin_owner(obj, obj.owner, actor_id=actor_id)
        if "enabled" in form.changed_data:
            services.set_plugin_enabled(obj, obj.enabled, actor_id=actor_id)

    @admin.display(description="Active version", ordering="active_version_number")
    def active_version(self, plugin):
        return plugin.active_version_number or "—"

    @admin.action(description="Enable selected plugins", permissions=["change"])
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected plugins", permissions=["change"])
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled):
        for plugin in queryset:
            services.set_plugin_enabled(plugin, enabled, actor_id=admin_actor_id(request))
        state = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{state} {len(queryset)} plugin(s).", messages.SUCCESS)


@admin.register(PluginVersion)
class PluginVersionAdmin(ReadOnlyAdmin):
    """Versions are immutable uploads: they can be looked at and activated, nothing else."""

    list_display = ["__str__", "plugin", "version", "is_active", "short_sha256", "signed", "created_at"]
    list_filter = ["is_active", "plugin"]
    list_select_related = ["plugin"]
    search_fields = ["plugin__slug", "version", "sha256"]
    fields = [
        "plugin", "version", "is_active", "sha256", "files_digest", "signed_by", "created_at",
        "files", "pretty_manifest",
    ]
    readonly_fields = fields
    actions = ["activate"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("archive")

    def has_activate_permission(self, request):
        return request.user.has_perm("plugins.change_pluginversion")

    @admin.display(description="sha256")
    def short_sha256(self, version):
        return version.sha256[:12]

    @admin.display(description="Signed", boolean=True)
    def signed(self, version):
        return bool(version.signed_by)

    @admin.display(description="Files")
    def files(self, version):
        sizes = sorted(services.stored_file_sizes(version).items())
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} ({} bytes)</li>", sizes))

    @admin.display(description="Manifest")
    def pretty_manifest(self, version):
        return json_block(version.manifest)

    @admin.action(description="Activate the selected version", permissions=["activate"])
    def activate(self, request, queryset):
        versions = list(queryset.select_related("plugin").order_by("plugin__slug"))
        for slug, group in groupby(versions, key=lambda version: version.plugin.slug):
            if len(list(group)) > 1:
                self.message_user(request, f"Select one version of {slug} to activate, not several.", messages.ERROR)
                return
        for version in versions:
            services.activate_version(version, actor_id=admin_actor_id(request))
        activated = ", ".join(str(version) for version in versions)
        self.message_user(request, f"Activated {activated}.", messages.SUCCESS)
