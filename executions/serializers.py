from django.conf import settings
from rest_framework import serializers

from .models import ExecutionEvent


class SecretsField(serializers.DictField):
    child = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=8192)


class ExecuteRequestSerializer(serializers.Serializer):
    """The body of POST /execute, in the clients' camelCase."""

    pluginId = serializers.SlugField(max_length=64)
    actionName = serializers.CharField(max_length=64)
    params = serializers.JSONField(required=False, default=dict)
    secrets = SecretsField(required=False, default=dict)
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=settings.MAX_TIMEOUT_MS)
    organizationId = serializers.CharField(required=False, max_length=64)
    actorId = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    version = serializers.CharField(required=False, max_length=64)
    # `async` is a Python keyword, hence the mapping in `to_internal_value`.
    run_async = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
        data = dict(data)
        if "async" in data:
            data["run_async"] = data.pop("async")
        return super().to_internal_value(data)

    def validate_params(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("params must be a JSON object")
        return value


class EventSerializer(serializers.ModelSerializer):
    actorId = serializers.CharField(source="actor_id")
    targetId = serializers.CharField(source="target_id")
    organizationId = serializers.SlugRelatedField(source="organization", slug_field="slug", read_only=True)

    class Meta:
        model = ExecutionEvent
        fields = ["id", "type", "organizationId", "actorId", "targetId", "timestamp", "metadata"]


class EventQuerySerializer(serializers.Serializer):
    """The filters of GET /events, all optional."""

    type = serializers.MultipleChoiceField(
        choices=ExecutionEvent.Type.choices, required=False, help_text="one or more types, comma-separated"
    )
    targetId = serializers.CharField(required=False, help_text="a plugin id for plugin events")
    actorId = serializers.CharField(required=False)
    organizationId = serializers.CharField(required=False, help_text="operators only; others read their own")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive")

    def to_internal_value(self, data):
        values = {key: data[key] for key in data}
        if "type" in data:
            # ?type=a,b and ?type=a&type=b both mean either type.
            raw = data.getlist("type") if hasattr(data, "getlist") else [data["type"]]
            values["type"] = [part.strip() for item in raw for part in item.split(",") if part.strip()]
        return super().to_internal_value(values)

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be after since"})
        return attrs
