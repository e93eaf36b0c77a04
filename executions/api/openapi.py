"""The OpenAPI description of the execution endpoints, next to their views."""

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, inline_serializer
from rest_framework import serializers

from core.openapi import EXECUTION_ID, ErrorSerializer, LinkedResponse, error_responses

from .serializers import ExecuteRequestSerializer


class ExecuteRequestDocSerializer(ExecuteRequestSerializer):
    """POST /execute's body as clients send it: `async` is a Python keyword,
    so the real serializer holds it as `run_async`."""

    def get_fields(self):
        fields = super().get_fields()
        fields["async"] = fields.pop("run_async")
        return fields


class QuotaSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    remaining = serializers.IntegerField(allow_null=True, help_text="null for an unlimited tier")
    limit = serializers.IntegerField(allow_null=True)


class CallbackStateSerializer(serializers.Serializer):
    url = serializers.CharField()
    state = serializers.ChoiceField(choices=["waiting", "pending", "delivered", "failed"],
                                    help_text="waiting: the run has not ended; pending: being sent or to be sent again")
    attempts = serializers.IntegerField()
    lastStatusCode = serializers.IntegerField(required=False, allow_null=True)
    lastError = serializers.CharField(required=False, allow_null=True)
    deliveredAt = serializers.DateTimeField(required=False, allow_null=True)


class ExecutionResultSerializer(serializers.Serializer):
    executionId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["queued", "running", "success"])
    success = serializers.BooleanField(required=False)
    result = serializers.JSONField(required=False, help_text="Whatever the action returned.")
    executionTime = serializers.IntegerField(required=False, allow_null=True, help_text="ms")
    memoryUsed = serializers.IntegerField(required=False, allow_null=True, help_text="peak bytes")
    cacheHit = serializers.BooleanField(required=False)
    retryCount = serializers.IntegerField(required=False)
    logs = serializers.ListField(child=serializers.CharField(), required=False)
    logsTruncated = serializers.BooleanField(required=False)
    quota = QuotaSerializer()
    callback = CallbackStateSerializer(required=False, help_text="GET only, for a run submitted with a callbackUrl.")


class ExecutionRecordSerializer(ExecutionResultSerializer):
    """GET /executions/<id>: the record of a run, 200 however the run ended."""

    status = serializers.ChoiceField(choices=["queued", "running", "success", "error", "timeout"])
    error = ErrorSerializer(required=False, help_text="What the run ended with, when it failed.")
    fallback = serializers.ChoiceField(choices=["stale_cache", "default"], required=False)
    stale = serializers.BooleanField(required=False)


class ExecutionQueuedSerializer(serializers.Serializer):
    executionId = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["queued"])
    quota = QuotaSerializer()


QUOTA_EXAMPLE = {"used": 1, "remaining": 9999, "limit": 10000}
EXECUTE_EXAMPLES = [
    OpenApiExample(
        "Synchronous run",
        request_only=True,
        value={"pluginId": "text-tools", "actionName": "wordCount", "params": {"text": "The quick brown fox"},
               "timeout": 30000, "actorId": "person_123"},
    ),
    OpenApiExample(
        "Asynchronous run with a secret",
        request_only=True,
        value={"pluginId": "weather", "actionName": "getForecast", "params": {"city": "Oslo"},
               "secrets": {"API_KEY": "…"}, "async": True},
    ),
    OpenApiExample(
        "Success",
        response_only=True,
        status_codes=["200"],
        value={"executionId": EXECUTION_ID, "status": "success", "success": True,
               "result": {"words": 4, "uniqueWords": 4}, "executionTime": 24, "memoryUsed": 15519744,
               "cacheHit": False, "retryCount": 0, "logs": [], "logsTruncated": False, "quota": QUOTA_EXAMPLE},
    ),
    OpenApiExample(
        "Queued",
        response_only=True,
        status_codes=["202"],
        value={"executionId": EXECUTION_ID, "status": "queued", "quota": QUOTA_EXAMPLE},
    ),
    OpenApiExample(
        "Params refused by the plugin",
        response_only=True,
        status_codes=["400"],
        value={"success": False, "executionId": EXECUTION_ID,
               "error": {"type": "VALIDATION_ERROR", "message": "x and y must have the same length (got 3 and 2)",
                         "retryable": False, "details": {"x": 3, "y": 2}},
               "status": "error", "executionTime": 7, "memoryUsed": 3121152, "retryCount": 0, "logs": [],
               "logsTruncated": False, "quota": QUOTA_EXAMPLE},
    ),
]
EXECUTE_ERROR_TYPES = [
    "VALIDATION_ERROR", "PERMISSION_DENIED", "PLUGIN_NOT_FOUND", "ACTION_NOT_FOUND", "PLUGIN_DISABLED",
    "IDEMPOTENCY_CONFLICT",
    "QUOTA_EXCEEDED", "CONCURRENCY_LIMIT", "QUEUE_FULL", "SHUTTING_DOWN", "CIRCUIT_OPEN", "SANDBOX_UNAVAILABLE", "TIMEOUT",
    "NETWORK_ERROR", "WORKER_CRASHED", "PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED", "SANDBOX_VIOLATION",
]

EXECUTE_SCHEMA = dict(
    summary="Run a plugin action",
    description="Synchronous by default (200 with the result); `\"async\": true` answers 202 with a Location "
    "to poll. Errors use the envelope, with the execution's id once one was created.",
    request=ExecuteRequestDocSerializer,
    responses={
        200: ExecutionResultSerializer,
        202: LinkedResponse(ExecutionQueuedSerializer, links={"GetExecution": {
            "operationId": "executions_retrieve", "parameters": {"execution_id": "$response.body#/executionId"}}}),
        **error_responses(*EXECUTE_ERROR_TYPES),
    },
    examples=EXECUTE_EXAMPLES,
    parameters=[
        OpenApiParameter(
            "Idempotency-Key", str, OpenApiParameter.HEADER,
            description="Up to 200 characters: a retried request with the same key and body returns the first "
            "request's execution instead of running again; another body with it is IDEMPOTENCY_CONFLICT.",
        )
    ],
)
EXECUTION_DETAIL_SCHEMA = dict(
    summary="One execution of the caller's organization",
    description="The same body as POST /execute's answer once finished, `{executionId, status, quota}` before; "
    "always 200, since the execution exists: a failed run is `\"success\": false` with its `status` (`error` or "
    "`timeout`) and its `error`.",
    responses={200: ExecutionRecordSerializer, **error_responses("EXECUTION_NOT_FOUND")},
    examples=[
        *(example for example in EXECUTE_EXAMPLES if example.response_only and "200" in example.status_codes),
        OpenApiExample(
            "Failed run", response_only=True, status_codes=["200"],
            value={"success": False, "executionId": EXECUTION_ID,
                   "error": {"type": "PLUGIN_ERROR", "message": "KeyError: 'rows'", "retryable": False,
                             "details": {"traceback": "  File \"<plugin>/plugin.py\", line 143, in report"}},
                   "status": "error", "executionTime": 7, "memoryUsed": 3121152, "retryCount": 0, "logs": [],
                   "logsTruncated": False, "quota": QUOTA_EXAMPLE},
        ),
    ],
)

CACHE_CLEAR_SCHEMA = dict(
    summary="Clear the whole result cache (operators)",
    request=None,
    responses={200: inline_serializer("CacheCleared", {"cleared": serializers.BooleanField(),
                                                       "entriesRemoved": serializers.IntegerField()})},
    examples=[OpenApiExample("Cleared", value={"cleared": True, "entriesRemoved": 42}, response_only=True)],
)
CACHE_INVALIDATE_SCHEMA = dict(
    summary="Drop one plugin's cached results (operators)",
    request=None,
    responses={
        200: inline_serializer("CacheInvalidated", {"pluginId": serializers.CharField(),
                                                    "invalidated": serializers.BooleanField(),
                                                    "entriesRemoved": serializers.IntegerField()}),
        **error_responses("PLUGIN_NOT_FOUND"),
    },
    examples=[OpenApiExample("Invalidated", value={"pluginId": "weather", "invalidated": True, "entriesRemoved": 3},
                             response_only=True)],
)


# -- callbacks and batches ----------------------------------------------------------

class BatchItemDocSerializer(ExecuteRequestSerializer):
    """One item: /execute's body without `async`, with the item's own idempotency key."""

    idempotencyKey = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                           help_text="This item's Idempotency-Key (as /execute's header).")

    def get_fields(self):
        fields = super().get_fields()
        del fields["run_async"]
        return fields


class ExecuteBatchDocSerializer(serializers.Serializer):
    items = BatchItemDocSerializer(many=True, min_length=1, max_length=settings.EXECUTE_BATCH_MAX_ITEMS,
                                   help_text="1 to EXECUTE_BATCH_MAX_ITEMS (20) items.")
    async_ = serializers.BooleanField(required=False, default=False, help_text="For every item.")
    timeoutMs = serializers.IntegerField(
        required=False, min_value=1, max_value=settings.MAX_TIMEOUT_MS, help_text="Synchronous: how long to wait for all the items together; "
        "those not ended by then are answered queued or running, with their location. Default: until each ends.",
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["async"] = fields.pop("async_")
        return fields


class BatchAnswerSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=serializers.JSONField(),
        help_text="In the request's order: each the execution's body (as GET /executions/<id>, plus `location`) "
        "or the error envelope that refused the item (with `retryAfter` when it has one).",
    )


EXECUTE_BATCH_SCHEMA = dict(
    summary="Run several plugin actions in one request",
    description="Each item is admitted as one POST /execute would be: its own quota count, idempotency, cache "
    "and refusal. Always 200 when the batch itself is well-formed; each item answers for itself.",
    request=ExecuteBatchDocSerializer,
    responses={200: BatchAnswerSerializer, **error_responses("VALIDATION_ERROR")},
    examples=[
        OpenApiExample(
            "Two runs, asynchronous",
            request_only=True,
            value={"async": True, "items": [
                {"pluginId": "text-tools", "actionName": "slugify", "params": {"text": "Hello"},
                 "idempotencyKey": "order-17-slug", "callbackUrl": "https://hooks.example.com/runs"},
                {"pluginId": "stats", "actionName": "describe", "params": {"values": [1, 2, 3]}},
            ]},
        ),
        OpenApiExample(
            "One queued, one refused",
            response_only=True,
            status_codes=["200"],
            value={"items": [
                {"executionId": EXECUTION_ID, "status": "queued", "quota": QUOTA_EXAMPLE,
                 "location": f"/executions/{EXECUTION_ID}"},
                {"success": False, "error": {"type": "PLUGIN_NOT_FOUND", "message": "no plugin 'statz'",
                                             "retryable": False}},
            ]},
        ),
    ],
)
