from rest_framework import serializers

from core.errors import EngineError, shortened

from ..models import AuditEvent


class EventSerializer(serializers.ModelSerializer):
    actorId = serializers.CharField(source="actor_id")
    targetId = serializers.CharField(source="target_id")
    organizationId = serializers.SlugRelatedField(source="organization", slug_field="slug", read_only=True,
                                                  allow_null=True, help_text="null for a service-wide event")

    class Meta:
        model = AuditEvent
        fields = ["id", "type", "organizationId", "actorId", "targetId", "timestamp", "metadata"]


class EventQuerySerializer(serializers.Serializer):
    """The filters of GET /events, all optional."""

    type = serializers.MultipleChoiceField(
        choices=AuditEvent.Type.choices, required=False, help_text="one or more types, comma-separated"
    )
    targetId = serializers.CharField(required=False, help_text="a plugin id for plugin events")
    actorId = serializers.CharField(required=False)
    organizationId = serializers.CharField(required=False, help_text="operators only; others read their own")
    since = serializers.DateTimeField(required=False, help_text="ISO 8601, inclusive")
    until = serializers.DateTimeField(required=False, help_text="ISO 8601, exclusive (not after since: no events)")

    def to_internal_value(self, data):
        values = {key: data[key] for key in data}
        if "type" in data:
            # ?type=a,b and ?type=a&type=b both mean either type.
            raw = data.getlist("type") if hasattr(data, "getlist") else [data["type"]]
            values["type"] = [part.strip() for item in raw for part in item.split(",") if part.strip()]
            unknown = [name for name in values["type"] if name not in AuditEvent.Type.values]
            if unknown:
                # The types in full: a field's message would be cut to the length of an echo.
                raise EngineError(
                    "VALIDATION_ERROR",
                    f"{shortened(unknown[0], 100)!r} is not an event type; the types are "
                    + ", ".join(AuditEvent.Type.values),
                    details=[{"field": "type", "message": "not an event type"}],
                )
        return super().to_internal_value(values)
