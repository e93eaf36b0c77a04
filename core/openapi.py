"""OpenAPI (drf-spectacular) pieces every endpoint shares: the error
envelope and its examples. Each endpoint's own description lives next to its
view, in its app's `api/openapi.py`.

`EnvelopeAutoSchema` (the project's DEFAULT_SCHEMA_CLASS) gives every
operation the error responses any endpoint of its kind can answer, so no
endpoint is documented without its failures; a view lists its own specific
failures with `error_responses(...)` in `@extend_schema(responses=...)`.
"""

from collections import defaultdict

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from .envelope import error_body, error_status
from .errors import ERROR_TYPES
from .middleware import EXEMPT_PATHS as SHEDDING_EXEMPT_PATHS
from .permissions import IsOperator
from .serializers import StrictJSONBody

ERROR_TYPE_CHOICES = sorted(ERROR_TYPES)
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"

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
    "SHUTTING_DOWN": "this server is shutting down; try again shortly",
    "CIRCUIT_OPEN": "plugin 'weather' is failing; its circuit breaker is open for every organization",
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


class LinkedResponse(OpenApiResponse):
    """A response with OpenAPI links: how a value in it (a plugin's id, an
    execution's id) feeds another operation, for clients and for stateful
    testing. `links`: {name: {"operationId", "parameters"}}."""

    def __init__(self, response=None, *, links, **kwargs):
        super().__init__(response, **kwargs)
        self.links = links


class EnvelopeAutoSchema(AutoSchema):
    def _get_response_for_code(self, serializer, status_code, media_types=None, direction="response"):
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        if isinstance(serializer, LinkedResponse):
            response["links"] = serializer.links
        return response

    def _map_serializer(self, serializer, direction, bypass_extensions=False):
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        if direction == "request" and isinstance(force_instance(serializer), StrictJSONBody):
            schema["additionalProperties"] = False
        return schema

    def _get_serializer_field_meta(self, field, direction):
        meta = super()._get_serializer_field_meta(field, direction)
        if direction == "request" and isinstance(field, serializers.CharField) and not field.read_only:
            # DRF refuses a blank string (once trimmed, unless told not to trim)
            # unless the field allows it, and NUL in any text; drf-spectacular
            # says the first only with request and response components split,
            # the others never. A field with a pattern of its own says it there.
            if not field.allow_blank:
                meta.setdefault("minLength", 1)
            if not any(isinstance(validator, RegexValidator) for validator in field.validators):
                meta.setdefault("pattern", NOT_BLANK if field.trim_whitespace and not field.allow_blank else NO_NUL)
        return meta

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
        if self.path not in SHEDDING_EXEMPT_PATHS:
            # An overloaded web process refuses before reading the request (core.middleware).
            types.append("QUEUE_FULL")
        return types
