import hashlib
import hmac
import secrets

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

API_KEY_PREFIX = "pex"


class Tier(models.Model):
    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    name = models.SlugField(max_length=50, unique=True)
    daily_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Executions per UTC day; empty means unlimited."
    )
    concurrent_limit = models.PositiveIntegerField(default=1, help_text="Executions queued or running at once.")
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.LOW)
    max_memory_mb = models.PositiveIntegerField(
        null=True, blank=True, help_text="Memory ceiling per run; empty means the operator's MAX_MEMORY_MB."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Organization(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="organizations")
    owner_name = models.CharField(max_length=200, blank=True)
    owner_email = models.EmailField(blank=True)
    daily_limit_override = models.PositiveIntegerField(null=True, blank=True)
    concurrent_limit_override = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    @property
    def daily_limit(self):
        return self.daily_limit_override if self.daily_limit_override is not None else self.tier.daily_limit

    @property
    def concurrent_limit(self):
        if self.concurrent_limit_override is not None:
            return self.concurrent_limit_override
        return self.tier.concurrent_limit


def hash_secret(secret):
    # API keys are 256-bit random strings, so a fast hash is enough: there is
    # nothing to brute-force, unlike a human password.
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    is_staff = models.BooleanField(default=False, help_text="May call operator endpoints.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.organization.slug}/{self.name})"

    @classmethod
    def issue(cls, organization, name="default", is_staff=False):
        """Create a key and return (record, plaintext); the plaintext is never stored."""
        prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = cls.objects.create(
            organization=organization,
            name=name,
            prefix=prefix,
            hashed_secret=hash_secret(secret),
            is_staff=is_staff,
        )
        return record, f"{API_KEY_PREFIX}_{prefix}_{secret}"

    def matches(self, secret):
        return hmac.compare_digest(self.hashed_secret, hash_secret(secret))

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def revoke(self):
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])


class DailyUsage(models.Model):
    """Executions admitted for one organization on one UTC day.

    A new day is a new row, so the reset at midnight needs no job; counts only
    change through conditional UPDATEs in quotas.enforcement.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="one_usage_row_per_org_day")]

    def __str__(self):
        return f"{self.organization.slug} {self.day}: {self.count}"


# The names a plugin manifest's `secrets` declares (plugins.manifest).
SECRET_NAME_PATTERN = r"\A[A-Z][A-Z0-9_]{0,63}\Z"
validate_secret_name = RegexValidator(SECRET_NAME_PATTERN, "a secret name in UPPER_SNAKE_CASE, such as API_KEY")


class OrganizationSecret(models.Model):
    """A secret an organization stores for its plugins, such as an API key.

    Only quotas.secrets reads or writes `ciphertext`; the value is encrypted
    at rest and never shown. A run gets it in `ctx.secrets` when the plugin's
    manifest declares its name and the organization granted it to that
    plugin: a name alone is not enough, since anyone publishing a new
    version of a plugin can declare any name.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64, validators=[validate_secret_name])
    # A relation, not slugs: a grant dies with its plugin and never passes
    # to a later plugin of the same slug. Named by string, as quotas sits
    # below plugins; only quotas.secrets changes it.
    plugins = models.ManyToManyField(
        "plugins.Plugin", blank=True, related_name="granted_secrets",
        help_text="The plugins that receive this secret when their manifest declares its name.",
    )
    ciphertext = models.TextField(editable=False)
    key_id = models.CharField(
        max_length=16, editable=False, help_text="Which encryption key sealed the value (see rotate_secrets)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_secret_name_per_organization")
        ]

    def __str__(self):
        return f"{self.organization.slug}/{self.name}"


class CallbackSigningSecret(models.Model):
    """The key an organization's execution callbacks are signed with
    (HMAC-SHA256, executions.callbacks), made on first need and rotated on
    request. Only quotas.callback_signing reads or writes `ciphertext`,
    encrypted at rest like the stored secrets; unlike them the organization
    may read it, since its receivers must check signatures with it."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="callback_signing_secret")
    ciphertext = models.TextField(editable=False)
    key_id = models.CharField(max_length=16, editable=False, help_text="Which encryption key sealed it.")
    created_at = models.DateTimeField(help_text="When this value was made (a rotation makes a new one).")

    def __str__(self):
        return f"{self.organization.slug} callback signing secret"
