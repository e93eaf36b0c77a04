from rest_framework import serializers

from ..models import OrganizationSecret, validate_secret_name
from ..secrets import MAX_SECRET_LENGTH, MIN_SECRET_LENGTH


class SecretSerializer(serializers.ModelSerializer):
    """A stored secret as the API shows it: its name and dates, never its value."""

    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    class Meta:
        model = OrganizationSecret
        fields = ["name", "createdAt", "updatedAt"]


class SecretWriteSerializer(serializers.Serializer):
    """PUT /secrets/<NAME>: the name comes from the URL, the value from the body."""

    name = serializers.CharField(validators=[validate_secret_name])
    # Shorter values could not be told apart from ordinary text, so they
    # could not be redacted from what runs leave behind.
    value = serializers.CharField(min_length=MIN_SECRET_LENGTH, max_length=MAX_SECRET_LENGTH, trim_whitespace=False)
