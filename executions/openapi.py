"""OpenAPI (drf-spectacular) for the whole API: the error envelope, the
authentication scheme, and the documented shapes of responses that views
build by hand.

`EnvelopeAutoSchema` (the project's DEFAULT_SCHEMA_CLASS) gives every
operation the error responses any endpoint of its kind can answer, so no
endpoint is documented without its failures; a view lists its own specific
failures with `error_responses(...)` in `@extend_schema(responses=...)`.
"""

from collections import defaultdict

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from plugins.serializers import ActivateSerializer, PluginSerializer, PluginUploadSerializer, UploadedVersionSerializer
from quotas.permissions import IsOperator
from quotas.serializers import SecretSerializer

from .errors import ERROR_TYPES, error_body, error_status
from .serializers import ExecuteRequestSerializer

ERROR_TYPE_CHOICES = sorted(ERROR_TYPES)

# What a client sees for each error type, in the examples.
SAMPLE_MESSAGES = {
    "VALIDATION_ERROR": "params do not match the action's schema: 'city' is a required property",
    "AUTHENTICATION_FAILED": "invalid or revoked credentials",
    "PERMISSION_DENIED": "organizationId does not match the API key's organization",
    "NOT_FOUND": "no such endpoint: /nothing",
    "PLUGIN_NOT_FOUND": "no plugin 'weather'",
    "ACTION_NOT_FOUND": "plugin 'weather' has no action 'getForecst'",
    "EXECUTION_NOT_FOUND": "no execution 5ef27446-0c1d-4b8e-9a51-1c2d3e4f5a6b",
    "PLUGIN_DISABLED": "plugin 'weather' is disabled",
    "IDEMPOTENCY_CONFLICT": "this Idempotency-Key was used with a different request body",
    "QUOTA_EXCEEDED": "the daily limit of 100 executions is used up; it resets at midnight UTC",
    "CONCURRENCY_LIMIT": "1 execution(s) already queued or running for this organization",
    "RATE_LIMITED": "too many requests",
    "QUEUE_FULL": "the queue holds 100 runs already; try again shortly",
    "CIRCUIT_OPEN": "plugin 'weather' is failing; its circuit breaker is open",
    "SANDBOX_UNAVAILABLE": "plugins are not run on this host: required sandbox layers are missing: seccomp",
    "TIMEOUT": "the action ran longer than its timeout of 30000 ms",
    "NETWORK_ERROR": "api.weather.gov: connection timed out",
    "WORKER_CRASHED": "the sandboxed process was killed by signal 9",
    "PLUGIN_ERROR": "ValueError: bad input",
    "MEMORY_LIMIT_EXCEEDED": "the action used more than its 512 MB memory limit",
    "SANDBOX_VIOLATION": "egress to 10.0.0.1 refused: private address",
    "INTERNAL_ERROR": "an internal error occurred; it has been logged",
}
EXECUTION_ID = "5ef27446-0c1d-4b8e-9a51-1c2d3e4f5a6b"
# Failures that the run itself ends with, reported with the execution's id.
RUN_ERROR_TYPES = {
    "TIMEOUT", "NETWORK_ERROR", "WORKER_CRASHED", "PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED",
    "OUTPUT_LIMIT_EXCEEDED", "SANDBOX_VIOLATION",
}


class ErrorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ERROR_TYPE_CHOICES)
    message = serializers.CharField()
    retryable = serializers.BooleanField(help_text="Whether the same request may succeed later.")
    details = serializers.JSONField(
        required=False, help_text="Per-field validation errors, the plugin's traceback, missing layers…"
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """Every error the API answers, whatever the endpoint."""

    success = serializers.BooleanField(help_text="Always false.")
    executionId = serializers.UUIDField(required=False, help_text="When an execution was created.")
    error = ErrorSerializer()


def error_responses(*error_types):
    """{status: response} documenting the error envelope for these types, with
    one example each, for `@extend_schema(responses={...})`."""
    by_status = defaultdict(list)
    for error_type in error_types:
        by_status[error_status(error_type)].append(error_type)
    return {
        status: OpenApiResponse(
            ErrorEnvelopeSerializer,
            description=" / ".join(types),
            examples=[
                OpenApiExample(
                    error_type,
                    value=error_body(
                        error_type,
                        SAMPLE_MESSAGES.get(error_type, error_type.replace("_", " ").lower()),
                        execution_id=EXECUTION_ID if error_type in RUN_ERROR_TYPES else None,
                    ),
                )
                for error_type in types
            ],
        )
        for status, types in by_status.items()
    }


class EnvelopeAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status, response in error_responses(*self._implied_error_types()).items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(response, str(status), direction=direction)
        return responses

    def _implied_error_types(self):
        """The failures any endpoint like this one can answer."""
        types = ["INTERNAL_ERROR"]
        if self.method in ("POST", "PUT", "PATCH"):
            types.append("VALIDATION_ERROR")
        permissions = self.view.get_permissions()
        if self.view.get_authenticators() and not all(isinstance(p, AllowAny) for p in permissions):
            types += ["AUTHENTICATION_FAILED", "RATE_LIMITED"]
        if any(isinstance(p, IsOperator) for p in permissions):
            types.append("PERMISSION_DENIED")
        if "{" in self.path:
            types.append("NOT_FOUND")
        return types


class BearerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "quotas.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "API key (pex_<prefix>_<secret>) or JWT",
            "description": "The key decides the organization and so the tier; staff keys may call operator endpoints.",
        }


class TextOrFileFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "plugins.serializers.TextOrFileField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "format": "binary", "description": "plugin.json, as a file or as text"}


# Shapes the views build by hand, documented here.


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
]
EXECUTE_ERROR_TYPES = [
    "VALIDATION_ERROR", "PERMISSION_DENIED", "PLUGIN_NOT_FOUND", "ACTION_NOT_FOUND", "PLUGIN_DISABLED",
    "IDEMPOTENCY_CONFLICT",
    "QUOTA_EXCEEDED", "CONCURRENCY_LIMIT", "QUEUE_FULL", "CIRCUIT_OPEN", "SANDBOX_UNAVAILABLE", "TIMEOUT",
    "NETWORK_ERROR", "WORKER_CRASHED", "PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED", "SANDBOX_VIOLATION",
]

HEALTH_EXAMPLE = {
    "status": "healthy",
    "checks": {
        "database": {"status": "healthy", "latencyMs": 0.4},
        "cache": {"status": "healthy", "backend": "FileBasedCache"},
        "broker": {"status": "healthy", "queued": 0, "limit": 100},
        "cluster": {"status": "healthy", "clusters": 3, "workers": 10, "states": ["Idle"]},
        "sandbox": {"status": "healthy", "layers": {"seccomp": "active", "landlock": "active"}, "required": ["seccomp", "landlock"]},
        "memory": {"status": "healthy", "usedPercent": 31.2},
        "cpu": {"status": "healthy", "usedPercent": 12.5},
    },
}


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    checks = serializers.DictField(
        child=serializers.JSONField(), help_text="database, cache, broker, cluster, sandbox, memory, cpu"
    )


class WorkerPoolSerializer(serializers.Serializer):
    clusters = serializers.IntegerField(help_text="qcluster processes with a live heartbeat")
    total = serializers.IntegerField()
    active = serializers.IntegerField(help_text="runs in progress")
    idle = serializers.IntegerField()
    utilization = serializers.FloatField(help_text="busy workers / total, 0..1")


class QueueWaitSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="seconds")
    p95 = serializers.FloatField(allow_null=True, help_text="seconds")
    samples = serializers.IntegerField()
    windowSeconds = serializers.IntegerField()


class QueueSerializer(serializers.Serializer):
    size = serializers.IntegerField(help_text="runs admitted and not started")
    limit = serializers.IntegerField(help_text="QUEUE_LIMIT: beyond it POST /execute answers QUEUE_FULL")
    waitSeconds = QueueWaitSerializer()


class CacheStatsSerializer(serializers.Serializer):
    keys = serializers.IntegerField(help_text="fresh entries")
    entries = serializers.IntegerField(help_text="fresh and stale entries")
    sizeBytes = serializers.IntegerField()
    hits = serializers.IntegerField(help_text="cacheable executions answered from the cache, last 24 h")
    misses = serializers.IntegerField(help_text="cacheable executions that ran, last 24 h")
    hitRate = serializers.FloatField(allow_null=True)
    maxEntries = serializers.IntegerField()
    ttlMs = serializers.IntegerField()
    enabled = serializers.BooleanField()


class BreakerSerializer(serializers.Serializer):
    pluginId = serializers.CharField()
    state = serializers.ChoiceField(choices=["open", "half_open"])
    openedAt = serializers.DateTimeField(allow_null=True)
    consecutiveFailures = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    workers = WorkerPoolSerializer()
    queue = QueueSerializer()
    completedTasks = serializers.IntegerField(help_text="executions that ended, all time")
    cache = CacheStatsSerializer()
    openCircuitBreakers = BreakerSerializer(many=True, help_text="breakers not closed")


STATS_EXAMPLE = {
    "workers": {"clusters": 3, "total": 10, "active": 2, "idle": 8, "utilization": 0.2},
    "queue": {"size": 0, "limit": 100, "waitSeconds": {"p50": 0.012, "p95": 0.041, "samples": 812,
                                                      "windowSeconds": 3600}},
    "completedTasks": 12890,
    "cache": {"keys": 212, "entries": 240, "sizeBytes": 1843200, "hits": 5120, "misses": 7770, "hitRate": 0.3972,
              "maxEntries": 1000, "ttlMs": 300000, "enabled": True},
    "openCircuitBreakers": [{"pluginId": "weather", "state": "open", "openedAt": "2026-11-26T21:40:12Z",
                             "consecutiveFailures": 5}],
}

# One event: the schema generator wraps it in a page (next, previous, results).
EVENT_EXAMPLE = {
    "id": 412, "type": "plugin_action_executed", "organizationId": "acme", "actorId": "person_123",
    "targetId": "text-tools", "timestamp": "2026-11-26T21:40:12.345678Z",
    "metadata": {"executionId": EXECUTION_ID, "pluginId": "text-tools", "actionName": "wordCount",
                 "status": "success", "errorType": None, "executionTime": 24, "memoryUsed": 15519744,
                 "retryCount": 0, "cacheHit": False, "quotaUsed": 1, "quotaRemaining": 9999},
}

METRICS_EXAMPLE = (
    "# HELP plugin_executions_total Executions that ended, by plugin, action and final status.\n"
    "# TYPE plugin_executions_total counter\n"
    'plugin_executions_total{action_name="wordCount",plugin_id="text-tools",status="success"} 42.0\n'
)

# The @extend_schema arguments of executions.views, kept here with the shapes they use.
EXECUTE_SCHEMA = dict(
    summary="Run a plugin action",
    description="Synchronous by default (200 with the result); `\"async\": true` answers 202 with a Location "
    "to poll. Errors use the envelope, with the execution's id once one was created.",
    request=ExecuteRequestDocSerializer,
    responses={
        200: ExecutionResultSerializer,
        202: ExecutionQueuedSerializer,
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
    description="The same shape as POST /execute's answer once finished; `{executionId, status, quota}` before.",
    responses={
        200: ExecutionResultSerializer,
        **error_responses("EXECUTION_NOT_FOUND", *sorted(RUN_ERROR_TYPES)),
    },
    examples=[example for example in EXECUTE_EXAMPLES if example.response_only and "200" in example.status_codes],
)
HEALTH_SCHEMA = dict(
    summary="Health of the service and its dependencies",
    responses={
        200: OpenApiResponse(
            HealthSerializer, description="healthy or degraded",
            examples=[OpenApiExample("Healthy", value=HEALTH_EXAMPLE)],
        ),
        503: OpenApiResponse(
            HealthSerializer, description="unhealthy: the database, broker, cluster or sandbox is down",
            examples=[OpenApiExample("No cluster", value={
                **HEALTH_EXAMPLE, "status": "unhealthy",
                "checks": {**HEALTH_EXAMPLE["checks"], "cluster": {
                    "status": "unhealthy", "clusters": 0, "message": "no qcluster heartbeat in the last 3 s"}},
            })],
        ),
    },
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

VERSION_EXAMPLE = {
    "version": "1.2.0", "sha256": "9f2c…", "filesDigest": "41ab…", "active": True,
    "createdAt": "2026-11-26T21:40:12Z", "signed": False, "signedBy": None,
}
PLUGIN_EXAMPLE = {
    "id": "weather", "name": "weather", "description": "Forecasts from api.weather.gov", "enabled": True,
    "public": False, "owner": "acme", "activeVersion": "1.2.0",
    "actions": [{"name": "getForecast", "description": "The forecast for a city", "cacheable": True}],
    "versions": [VERSION_EXAMPLE],
}
PLUGIN_RESPONSE = OpenApiResponse(PluginSerializer, examples=[OpenApiExample("Plugin", value=PLUGIN_EXAMPLE)])
PLUGIN_CHANGE_ERRORS = error_responses("PLUGIN_NOT_FOUND", "PERMISSION_DENIED")
PLUGIN_LIST_SCHEMA = dict(
    summary="The plugins the caller can run: public ones and its organization's own",
    operation_id="plugins_list",
    responses={200: OpenApiResponse(
        inline_serializer("PluginList", {"plugins": PluginSerializer(many=True)}),
        examples=[OpenApiExample("Plugins", value={"plugins": [PLUGIN_EXAMPLE]})],
    )},
)
PLUGIN_UPLOAD_SCHEMA = dict(
    summary="Upload a plugin version",
    description="Multipart: a zip in `archive`, or a module in `source` with its `manifest` (plugin.json).",
    request={"multipart/form-data": PluginUploadSerializer},
    responses={
        201: OpenApiResponse(UploadedVersionSerializer, examples=[
            OpenApiExample("Uploaded", value={"pluginId": "weather", **VERSION_EXAMPLE})]),
        **error_responses("VALIDATION_ERROR", "PERMISSION_DENIED"),
    },
)
PLUGIN_DETAIL_SCHEMA = dict(
    summary="One plugin with its versions",
    responses={200: PLUGIN_RESPONSE, **error_responses("PLUGIN_NOT_FOUND")},
)
PLUGIN_ACTIVATE_SCHEMA = dict(
    summary="Make a stored version the one that runs (an older one rolls back)",
    request=ActivateSerializer,
    responses={200: PLUGIN_RESPONSE, **PLUGIN_CHANGE_ERRORS},
    examples=[OpenApiExample("Roll back", value={"version": "1.1.0"}, request_only=True)],
)
PLUGIN_ENABLED_SCHEMA = dict(
    summary="Enable or disable a plugin (its owner or operators)",
    request=None,
    responses={200: PLUGIN_RESPONSE, **PLUGIN_CHANGE_ERRORS},
)

SECRET_EXAMPLE = {"name": "API_KEY", "createdAt": "2026-11-26T21:40:12Z", "updatedAt": "2026-11-26T21:40:12Z"}
SECRET_RESPONSE = OpenApiResponse(SecretSerializer, examples=[OpenApiExample("Secret", value=SECRET_EXAMPLE)])
SECRET_LIST_SCHEMA = dict(
    summary="The organization's stored secrets, by name (values are never returned)",
    operation_id="secrets_list",
    responses={200: OpenApiResponse(
        inline_serializer("SecretList", {"secrets": SecretSerializer(many=True)}),
        examples=[OpenApiExample("Secrets", value={"secrets": [SECRET_EXAMPLE]})],
    )},
)
SECRET_PUT_SCHEMA = dict(
    summary="Store or replace a secret",
    request=inline_serializer("SecretValue", {"value": serializers.CharField()}),
    responses={201: SECRET_RESPONSE, 200: SECRET_RESPONSE, **error_responses("VALIDATION_ERROR")},
    examples=[OpenApiExample("Store", value={"value": "a-long-random-api-key"}, request_only=True)],
)
SECRET_DELETE_SCHEMA = dict(
    summary="Delete a secret",
    responses={204: None, **error_responses("NOT_FOUND")},
)
