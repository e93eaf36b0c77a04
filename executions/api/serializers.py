from django.conf import settings
from rest_framework import serializers

from core.serializers import StrictJSONBody


class SecretsField(serializers.DictField):
    child = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=8192)


class AsyncKeyword:
    """Mixed into a body's serializer with a `run_async` field: `async` is a
    Python keyword, so the body's `async` is read into it."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
        data = dict(data)
        if "async" in data:
            data["run_async"] = data.pop("async")
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as invalid:
            # Named as the client wrote it.
            if isinstance(invalid.detail, dict) and "run_async" in invalid.detail:
                invalid.detail["async"] = invalid.detail.pop("run_async")
            raise


class ExecuteRequestSerializer(AsyncKeyword, StrictJSONBody, serializers.Serializer):
    """The body of POST /execute, in the clients' camelCase."""

    pluginId = serializers.SlugField(max_length=64)
    actionName = serializers.CharField(max_length=64)
    params = serializers.DictField(required=False, default=dict)
    secrets = SecretsField(required=False, default=dict)
    timeout = serializers.IntegerField(required=False, min_value=1, max_value=settings.MAX_TIMEOUT_MS)
    organizationId = serializers.CharField(required=False, max_length=64)
    actorId = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    version = serializers.CharField(required=False, max_length=64)
    run_async = serializers.BooleanField(required=False, default=False)
    tier = serializers.CharField(required=False, allow_blank=True,
                                 help_text="Ignored: the tier is always the organization's.")
    callbackUrl = serializers.CharField(
        required=False, max_length=2000,
        help_text="With async: POSTed the execution's final body, signed, when it ends (docs/api.md, Callbacks).",
    )


class BatchItemSerializer(ExecuteRequestSerializer):
    """One item of POST /execute/batch: /execute's body, but `async` is the
    batch's, and the Idempotency-Key header is the item's `idempotencyKey`."""

    idempotencyKey = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")

    def to_internal_value(self, data):
        if isinstance(data, dict) and "async" in data:
            raise serializers.ValidationError({"async": ["set async for the whole batch, not per item"]})
        return super().to_internal_value(data)


class ExecuteBatchSerializer(AsyncKeyword, StrictJSONBody, serializers.Serializer):
    """The body of POST /execute/batch. Every item must be a well-formed
    /execute body, or the whole batch is refused naming it (a malformed
    request is the client's to fix, as for /execute); what only admission can
    tell (a plugin, params against its action, quotas) refuses an item alone."""

    items = BatchItemSerializer(many=True, min_length=1, max_length=settings.EXECUTE_BATCH_MAX_ITEMS)
    timeoutMs = serializers.IntegerField(required=False, min_value=1, max_value=settings.MAX_TIMEOUT_MS)
    run_async = serializers.BooleanField(required=False, default=False)
