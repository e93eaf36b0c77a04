from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery

from core.admin_bases import ReadOnlyAdmin, admin_actor_id, badge

from .actions import reset_daily_usage
from .enforcement import utc_today
from .models import ApiKey, DailyUsage, Organization, OrganizationSecret, Tier
from .secrets import (
    MAX_SECRET_LENGTH,
    MIN_SECRET_LENGTH,
    delete_secret,
    grantable_plugins,
    set_secret,
    set_secret_grants,
)


def explain_blank(formfield, placeholder, help_text=None):
    """Say in the input itself what leaving it blank means."""
    formfield.widget.attrs["placeholder"] = placeholder
    # Wide enough to read it: the admin's number inputs fit six digits.
    formfield.widget.attrs["style"] = f"width: {len(placeholder) + 4}ch"
    if help_text:
        formfield.help_text = help_text
    return formfield


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ["name", "daily_limit", "concurrent_limit", "priority", "max_memory_mb"]
    list_editable = ["daily_limit", "concurrent_limit", "priority", "max_memory_mb"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "daily_limit":
            return explain_blank(formfield, "unlimited")
        if db_field.name == "max_memory_mb":
            return explain_blank(formfield, "MAX_MEMORY_MB")
        return formfield

    def changelist_view(self, request, extra_context=None):
        subtitle = "A blank daily limit means unlimited; a blank memory ceiling means the operator's MAX_MEMORY_MB."
        return super().changelist_view(request, {"subtitle": subtitle, **(extra_context or {})})


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "tier", "owner_email", "usage_today"]
    list_filter = ["tier"]
    list_select_related = ["tier"]
    search_fields = ["slug", "name", "owner_email"]
    actions = ["reset_daily_quota"]

    def get_readonly_fields(self, request, obj=None):
        # Clients and audit events name an organization by its slug: it is
        # chosen once, at creation.
        return ["created_at"] if obj is None else ["slug", "created_at"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "tier":
            # Deleting a tier is not an organization's business (and fails
            # while any organization is on it).
            formfield.widget.can_delete_related = False
        elif db_field.name in ("daily_limit_override", "concurrent_limit_override"):
            return explain_blank(formfield, "the tier's", "Blank: the tier's limit applies.")
        return formfield

    def get_queryset(self, request):
        today = DailyUsage.objects.filter(organization=OuterRef("pk"), day=utc_today())
        return super().get_queryset(request).annotate(today_count=Subquery(today.values("count")[:1]))

    def get_actions(self, request):
        # One "move to tier" action per tier: changing the tier of many
        # organizations takes one click and no intermediate form.
        actions = super().get_actions(request)
        if self.has_change_permission(request):
            for tier in Tier.objects.all():
                name = f"move_to_tier_{tier.name}"
                actions[name] = (self.tier_mover(tier), name, f"Move the selected organizations to tier {tier.name}")
        return actions

    def tier_mover(self, tier):
        def move(modeladmin, request, queryset):
            moved = list(queryset.exclude(tier=tier))
            queryset.filter(pk__in=[o.pk for o in moved]).update(tier=tier)
            for organization in moved:
                self.log_change(request, organization, f"Moved to tier {tier.name}.")
            self.message_user(request, f"Moved {len(moved)} organization(s) to tier {tier.name}.", messages.SUCCESS)

        return move

    @admin.action(description="Reset today's quota of the selected organizations", permissions=["change"])
    def reset_daily_quota(self, request, queryset):
        organizations = list(queryset)
        had_usage = reset_daily_usage(organizations, actor_id=admin_actor_id(request))
        self.message_user(
            request,
            f"Reset today's usage of {len(organizations)} organization(s); {had_usage} had used some.",
            messages.SUCCESS,
        )

    @admin.display(description="Executions today (UTC)", ordering="today_count")
    def usage_today(self, organization):
        used = organization.today_count or 0
        limit = organization.daily_limit
        return f"{used} / {limit}" if limit is not None else f"{used} / unlimited"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # The state says whether a key is revoked; its change page says when.
    list_display = ["prefix", "organization", "name", "state", "operator", "created_at", "last_used_at"]
    list_filter = ["is_staff", ("revoked_at", admin.EmptyFieldListFilter), "organization"]
    list_select_related = ["organization"]
    search_fields = ["prefix", "name", "organization__slug"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "is_staff"]
        return [
            "organization", "name", "state", "is_staff", "prefix", "hashed_secret", "created_at", "last_used_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        # A staff key calls operator endpoints, and clearing a revocation
        # brings a withdrawn key back: only superusers do either. Read-only
        # fields are left out of the form, so a posted value is ignored.
        superuser_only = [] if request.user.is_superuser else ["is_staff", "revoked_at"]
        if obj is None:
            return superuser_only
        # A key belongs to one organization for life; issue a new one instead.
        return ["organization", "state", "prefix", "hashed_secret", "created_at", "last_used_at", *superuser_only]

    @admin.display(description="Operator", ordering="is_staff")
    def operator(self, key):
        # A word for the few staff keys, not a red cross on every other one.
        return badge("staff", "#6a1b9a") if key.is_staff else ""

    @admin.display(description="State", ordering="revoked_at")
    def state(self, key):
        return badge("Revoked", "#c62828") if key.is_revoked else badge("Active", "#2e7d32")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        issued, plaintext = ApiKey.issue(obj.organization, name=obj.name, is_staff=obj.is_staff)
        obj.pk = issued.pk
        obj.refresh_from_db()
        messages.success(
            request,
            f"The new API key for {obj.organization.slug} is {plaintext} — copy it now: "
            "only its hash is stored, so it cannot be shown again.",
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            key.revoke()
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    """Counts move only through atomic updates in quotas.enforcement, never by hand."""

    list_display = ["organization", "day", "count"]
    list_filter = ["day", "organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__slug"]
    date_hierarchy = "day"


class OrganizationSecretForm(forms.ModelForm):
    # Write-only: the browser is never sent a value, not even the one typed
    # before a failed submission.
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        strip=False,
        min_length=MIN_SECRET_LENGTH,
        max_length=MAX_SECRET_LENGTH,
        help_text="Stored encrypted and never shown again.",
    )
    # Not the model field itself: grants change only through
    # quotas.secrets.set_secret_grants, which records each one.
    granted_plugins = forms.ModelMultipleChoiceField(
        queryset=OrganizationSecret._meta.get_field("plugins").related_model.objects.all(),
        required=False,
        help_text="The plugins that receive this secret when their manifest declares its name; no others do.",
    )

    class Meta:
        model = OrganizationSecret
        fields = ["organization", "name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["value"].required = False
            self.fields["value"].help_text = "Type a new value to replace the stored one; leave empty to keep it."
            self.fields["granted_plugins"].queryset = grantable_plugins(self.instance.organization)
            self.fields["granted_plugins"].initial = list(self.instance.plugins.all())

    def clean(self):
        cleaned = super().clean()
        organization = self.instance.organization if self.instance.pk else cleaned.get("organization")
        plugins = cleaned.get("granted_plugins") or []
        if organization is not None and plugins:
            grantable = set(grantable_plugins(organization).filter(pk__in=[plugin.pk for plugin in plugins]))
            foreign = sorted(plugin.slug for plugin in plugins if plugin not in grantable)
            if foreign:
                self.add_error("granted_plugins", f"{organization.slug} cannot run {', '.join(foreign)}")
        return cleaned


@admin.register(OrganizationSecret)
class OrganizationSecretAdmin(admin.ModelAdmin):
    """Secrets are written here and never read back: no page shows a value."""

    form = OrganizationSecretForm
    list_display = ["name", "organization", "updated_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__slug"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "value", "granted_plugins"]
        return ["organization", "name", "value", "granted_plugins", "key_id", "created_at", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A secret's value is replaced; its name and organization stay.
        return ["organization", "name", "key_id", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        # The admin's change view runs in one transaction: value and grants
        # are saved together or not at all.
        actor_id = admin_actor_id(request)
        value = form.cleaned_data.get("value")
        if value:
            record, _ = set_secret(obj.organization, obj.name, value, actor_id=actor_id)
            obj.pk = record.pk
            obj.refresh_from_db()
        set_secret_grants(obj, form.cleaned_data["granted_plugins"], actor_id=actor_id)

    def delete_model(self, request, obj):
        delete_secret(obj.organization, obj.name, actor_id=admin_actor_id(request))

    def delete_queryset(self, request, queryset):
        for secret in queryset.select_related("organization"):
            self.delete_model(request, secret)
