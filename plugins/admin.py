from itertools import groupby

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core.admin_bases import ReadOnlyAdmin, admin_actor_id, json_block
from quotas.models import Organization

from . import services
from .archive import load_uploaded_plugin
from .diffs import manifest_diff
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


def can_activate(request):
    return request.user.has_perm("plugins.change_pluginversion")


def is_rollback(version, active_uploaded_at):
    """Whether activating `version` goes back: it was uploaded before the active one."""
    return active_uploaded_at is not None and version.created_at < active_uploaded_at


class ShortSha256:
    @admin.display(description="sha256")
    def short_sha256(self, version):
        return version.sha256[:12]


def manifest_diff_table(old, new, old_label, new_label):
    """The fields two manifests differ in, as a table, or a sentence when there is nothing to show."""
    if old is None:
        return "No earlier version to compare with."
    changes = manifest_diff(old, new)
    if not changes:
        return "The manifests are the same."

    def cell(value, background):
        if value is None:
            return mark_safe('<td style="color:#6e7781;font-style:italic">absent</td>')
        return format_html('<td style="background:{}"><code>{}</code></td>', background, value)

    rows = format_html_join(
        "", "<tr><td><code>{}</code></td>{}{}</tr>",
        ((path, cell(before, "#ffebe9"), cell(after, "#e6ffec")) for path, before, after in changes),
    )
    return format_html(
        '<table class="manifest-diff"><thead><tr><th>Field</th><th>{}</th><th>{}</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        old_label, new_label, rows,
    )


class PluginVersionInline(ShortSha256, admin.TabularInline):
    model = PluginVersion
    fields = ["version", "short_sha256", "signed_by", "state", "created_at", "switch"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).defer("archive")

    def get_formset(self, request, obj=None, **kwargs):
        # Each row's button says whether it moves forward or back, which
        # depends on where the active version is.
        self.active_uploaded_at = (
            obj.versions.filter(is_active=True).values_list("created_at", flat=True).first() if obj else None
        )
        self.request = request
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Active")
    def state(self, version):
        return mark_safe("<strong>active</strong>") if version.is_active else ""

    @admin.display(description="")
    def switch(self, version):
        if version.is_active or not can_activate(self.request):
            return ""
        rollback = is_rollback(version, self.active_uploaded_at)
        url = reverse("admin:plugins_plugin_activate_version", args=[version.plugin_id, version.pk])
        return format_html('<a class="button" href="{}">{} {}</a>', url, "Roll back to" if rollback else "Activate",
                           version.version)

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

    def get_urls(self):
        activate = self.admin_site.admin_view(self.activate_version_view)
        return [
            path("<int:plugin_id>/versions/<int:version_id>/activate/", activate,
                 name="plugins_plugin_activate_version"),
            *super().get_urls(),
        ]

    def activate_version_view(self, request, plugin_id, version_id):
        """Confirm, then make a version the active one: a rollback when it is
        older. GET shows what would change; POST does it."""
        if not can_activate(request):
            raise PermissionDenied
        version = get_object_or_404(PluginVersion.objects.defer("archive").select_related("plugin"),
                                    plugin_id=plugin_id, pk=version_id)
        plugin_page = reverse("admin:plugins_plugin_change", args=[plugin_id])
        active = version.plugin.versions.defer("archive").filter(is_active=True).first()
        rollback = is_rollback(version, active.created_at if active else None)
        question = "Roll back {} to {}?" if rollback else "Activate {} {}?"
        if request.method == "POST":
            services.activate_version(version, actor_id=admin_actor_id(request))
            done = "Rolled back {} to {}." if rollback else "Activated {} {}."
            self.message_user(request, done.format(version.plugin.slug, version.version), messages.SUCCESS)
            return redirect(plugin_page)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": version.plugin,
            "title": question.format(version.plugin.slug, version.version),
            "version": version,
            "active": active,
            "answer": f"Yes, roll back to {version.version}" if rollback else f"Yes, activate {version.version}",
            "plugin_page": plugin_page,
            "diff": manifest_diff_table(active.manifest if active else None, version.manifest,
                                        f"{active.version} (active now)" if active else "", version.version),
        }
        return TemplateResponse(request, "admin/plugins/plugin/activate_version.html", context)

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
class PluginVersionAdmin(ShortSha256, ReadOnlyAdmin):
    """Versions are immutable uploads: they can be looked at and activated, nothing else."""

    list_display = ["__str__", "plugin", "version", "is_active", "short_sha256", "signed", "created_at"]
    list_filter = ["is_active", "plugin"]
    list_select_related = ["plugin"]
    search_fields = ["plugin__slug", "version", "sha256"]
    fields = [
        "plugin", "version", "is_active", "sha256", "files_digest", "signed_by", "created_at",
        "files", "pretty_manifest", "changes",
    ]
    readonly_fields = fields
    actions = ["activate"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("archive")

    def has_activate_permission(self, request):
        return can_activate(request)

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

    @admin.display(description="Manifest changes since the previous upload")
    def changes(self, version):
        previous = (
            version.plugin.versions.defer("archive").filter(created_at__lt=version.created_at)
            .order_by("-created_at").first()
        )
        return manifest_diff_table(previous.manifest if previous else None, version.manifest,
                                   previous.version if previous else "", version.version)

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
