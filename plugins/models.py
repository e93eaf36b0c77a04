from django.db import models


class PluginQuerySet(models.QuerySet):
    def visible_to(self, organization):
        return self.filter(models.Q(owner__isnull=True) | models.Q(owner=organization))


class Plugin(models.Model):
    slug = models.SlugField(max_length=64, unique=True, help_text="The pluginId clients call.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    owner = models.ForeignKey(
        "quotas.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="plugins",
        help_text="Empty for a public plugin; otherwise only this organization sees it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PluginQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    @property
    def active_version(self):
        return self.versions.filter(is_active=True).first()


class PluginVersion(models.Model):
    """One immutable upload: the manifest and the code archive it came with."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64)
    manifest = models.JSONField()
    archive = models.BinaryField(help_text="Zip of the plugin's files, as validated at upload.")
    sha256 = models.CharField(max_length=64, db_index=True)
    files_digest = models.CharField(
        max_length=64, blank=True, help_text="Digest of the files as uploaded: what a publisher signs (plugins.signing)."
    )
    signature = models.CharField(
        max_length=128, blank=True, help_text="The publisher's Ed25519 signature of the files digest, base64."
    )
    signed_by = models.CharField(
        max_length=64, blank=True, help_text="Fingerprint of the trusted key that signed it; empty if unsigned."
    )
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plugin", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["plugin", "version"], name="unique_plugin_version"),
            models.UniqueConstraint(
                fields=["plugin"], condition=models.Q(is_active=True), name="one_active_version_per_plugin"
            ),
        ]

    def __str__(self):
        return f"{self.plugin.slug}@{self.version}"

    def action(self, name):
        return self.manifest.get("actions", {}).get(name)
