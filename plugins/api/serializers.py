"""How plugins look to API clients (camelCase), and the bodies the plugin API accepts."""

from rest_framework import serializers

from core.serializers import StrictJSONBody

from ..models import Plugin, PluginVersion


class PluginVersionSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active")
    createdAt = serializers.DateTimeField(source="created_at")
    filesDigest = serializers.CharField(source="files_digest")
    signed = serializers.SerializerMethodField()
    signedBy = serializers.SerializerMethodField()

    class Meta:
        model = PluginVersion
        fields = ["version", "sha256", "filesDigest", "active", "createdAt", "signed", "signedBy"]

    def get_signed(self, version) -> bool:
        return bool(version.signed_by)

    def get_signedBy(self, version) -> str | None:
        return version.signed_by or None


class UploadedVersionSerializer(PluginVersionSerializer):
    pluginId = serializers.CharField(source="plugin.slug")

    class Meta(PluginVersionSerializer.Meta):
        fields = ["pluginId", *PluginVersionSerializer.Meta.fields]


class PluginSerializer(serializers.ModelSerializer):
    """Expects `versions` prefetched without their archives (plugins.api.views.visible_plugins)."""

    id = serializers.CharField(source="slug")
    public = serializers.SerializerMethodField()
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True,
                                         help_text="The owning organization; null for a public plugin.")
    activeVersion = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField()
    versions = PluginVersionSerializer(many=True)

    class Meta:
        model = Plugin
        fields = ["id", "name", "description", "enabled", "public", "owner", "activeVersion", "actions", "versions"]

    def get_public(self, plugin) -> bool:
        return plugin.owner_id is None

    def _active(self, plugin):
        return next((version for version in plugin.versions.all() if version.is_active), None)

    def get_activeVersion(self, plugin) -> str | None:
        active = self._active(plugin)
        return active.version if active else None

    def get_actions(self, plugin) -> list[dict]:
        """The active version's actions in brief; GET /plugins/<id> has no more, the manifest is the reference."""
        active = self._active(plugin)
        if active is None:
            return []
        return [
            {"name": name, "description": action.get("description", ""), "cacheable": action.get("cacheable", False)}
            for name, action in active.manifest["actions"].items()
        ]


class TextOrFileField(serializers.Field):
    """A multipart part a client may send as a plain field or as a file."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data.encode()
        if hasattr(data, "read"):
            return data
        raise serializers.ValidationError("must be text or a file")


class FlagField(serializers.BooleanField):
    # A multipart body is form input, where DRF reads a missing boolean as an
    # unticked checkbox (False); here a missing flag means its default.
    default_empty_html = serializers.empty


class PluginUploadSerializer(serializers.Serializer):
    """POST /plugins (multipart): a zip in `archive`, or a module in `source` with its `manifest`."""

    archive = serializers.FileField(required=False)
    source = serializers.FileField(required=False)
    manifest = TextOrFileField(required=False)
    signature = serializers.CharField(required=False, allow_blank=True, max_length=128)
    owner = serializers.SlugField(required=False, max_length=64)
    activate = FlagField(required=False, default=True)


class ActivateSerializer(StrictJSONBody, serializers.Serializer):
    """POST /plugins/<id>/activate: the stored version to make the active one."""

    version = serializers.CharField(max_length=64)
