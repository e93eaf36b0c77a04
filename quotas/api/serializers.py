from rest_framework import serializers

from core.errors import EngineError
from core.serializers import StrictJSONBody

from ..models import OrganizationSecret, validate_secret_name
from ..secrets import MAX_SECRET_LENGTH, MIN_SECRET_LENGTH, grantable_plugins


class SecretSerializer(serializers.ModelSerializer):
    """A stored secret as the API shows it: its name, the plugins it is
    granted to and its dates, never its value."""

    plugins = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = OrganizationSecret
        fields = ["name", "plugins", "createdAt", "updatedAt"]


class SecretValueSerializer(StrictJSONBody, serializers.Serializer):
    """The body of PUT /secrets/<NAME>."""

    # Shorter values could not be told apart from ordinary text, so they
    # could not be redacted from what runs leave behind.
    value = serializers.CharField(min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, trim_whitespace=False)


class SecretWriteSerializer(SecretValueSerializer):
    """PUT /secrets/<NAME>: the name comes from the URL, the value from the body."""

    # Not trimmed: the name checked must be the name stored ("W\r" is not "W").
    name = serializers.CharField(trim_whitespace=False, validators=[validate_secret_name])


class SecretGrantsSerializer(StrictJSONBody, serializers.Serializer):
    """PUT /secrets/<NAME>/plugins: the plugin ids the secret is granted to,
    all of them; any the organization cannot run is PLUGIN_NOT_FOUND, as it
    is for POST /execute, whether it exists for another organization or not
    at all."""

    plugins = serializers.ListField(child=serializers.SlugField(max_length=64))

    def validate_plugins(self, slugs):
        plugins = grantable_plugins(self.context["organization"]).filter(slug__in=slugs)
        found = {plugin.slug: plugin for plugin in plugins}
        unknown = sorted(set(slugs) - set(found))
        if unknown:
            message = f"no plugin {', '.join(map(repr, unknown))}"
            raise EngineError("PLUGIN_NOT_FOUND", message, details=[{"field": "plugins", "message": message}])
        return list(found.values())
