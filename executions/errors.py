"""The error envelope of DESIGN.md §5, and the one place that shapes it.

Every failure a client can see goes through `ApiError` (or a DRF exception
translated by `api_exception_handler`), so the type, the HTTP status and
`retryable` always agree with the table.
"""

import logging

from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)

# type -> (HTTP status, retryable)
ERROR_TYPES = {
    "VALIDATION_ERROR": (400, False),
    "AUTHENTICATION_FAILED": (401, False),
    "PERMISSION_DENIED": (403, False),
    "NOT_FOUND": (404, False),
    "PLUGIN_NOT_FOUND": (404, False),
    "ACTION_NOT_FOUND": (404, False),
    "EXECUTION_NOT_FOUND": (404, False),
    "METHOD_NOT_ALLOWED": (405, False),
    "PLUGIN_DISABLED": (409, False),
    "IDEMPOTENCY_CONFLICT": (409, False),
    "QUOTA_EXCEEDED": (429, True),
    "CONCURRENCY_LIMIT": (429, True),
    "RATE_LIMITED": (429, True),
    "QUEUE_FULL": (503, True),
    "CIRCUIT_OPEN": (503, True),
    "SANDBOX_UNAVAILABLE": (503, False),
    "TIMEOUT": (504, True),
    "NETWORK_ERROR": (502, True),
    "WORKER_CRASHED": (500, True),
    "PLUGIN_ERROR": (500, False),
    "MEMORY_LIMIT_EXCEEDED": (500, False),
    "OUTPUT_LIMIT_EXCEEDED": (500, False),
    "SANDBOX_VIOLATION": (500, False),
    "INTERNAL_ERROR": (500, True),
}


def error_status(error_type):
    return ERROR_TYPES.get(error_type, (500, False))[0]


def is_retryable(error_type):
    return ERROR_TYPES.get(error_type, (500, False))[1]


def error_body(error_type, message, *, details=None, execution_id=None):
    error = {"type": error_type, "message": message, "retryable": is_retryable(error_type)}
    if details:
        error["details"] = details
    body = {"success": False}
    if execution_id:
        body["executionId"] = str(execution_id)
    body["error"] = error
    return body


class ApiError(Exception):
    def __init__(self, error_type, message, *, details=None, headers=None, execution_id=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.details = details
        self.headers = headers or {}
        self.execution_id = execution_id

    @property
    def status(self):
        return error_status(self.error_type)

    def response(self):
        body = error_body(self.error_type, self.message, details=self.details, execution_id=self.execution_id)
        return Response(body, status=self.status, headers=self.headers)


def _validation_details(detail, prefix=""):
    """Flatten DRF's nested error detail into [{"field", "message"}]."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            field = key if key != "non_field_errors" else ""
            items += _validation_details(value, f"{prefix}.{field}" if prefix and field else (field or prefix))
        return items
    if isinstance(detail, list):
        items = []
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                items += _validation_details(value, f"{prefix}[{index}]")
            else:
                items.append({"field": prefix, "message": str(value)})
        return items
    return [{"field": prefix, "message": str(detail)}]


def api_exception_handler(exc, context):
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, drf_exceptions.ValidationError):
        details = _validation_details(exc.detail)
        summary = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details[:5])
        return ApiError("VALIDATION_ERROR", f"invalid request: {summary}", details=details).response()
    if isinstance(exc, drf_exceptions.ParseError):
        return ApiError("VALIDATION_ERROR", f"the body could not be parsed: {exc.detail}").response()
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        # Most endpoints take JSON, POST /plugins takes multipart: name what this one takes.
        accepted = " or ".join(parser.media_type for parser in context["view"].get_parsers())
        return ApiError("VALIDATION_ERROR", f"the body must be sent as {accepted} (Content-Type)").response()
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        response = ApiError("AUTHENTICATION_FAILED", str(exc.detail)).response()
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return ApiError("PERMISSION_DENIED", str(exc.detail)).response()
    if isinstance(exc, drf_exceptions.NotFound):
        return ApiError("NOT_FOUND", str(exc.detail)).response()
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return ApiError("METHOD_NOT_ALLOWED", str(exc.detail)).response()
    if isinstance(exc, drf_exceptions.Throttled):
        headers = {"Retry-After": str(int(exc.wait or 1))}
        return ApiError("RATE_LIMITED", "too many requests", headers=headers).response()
    if isinstance(exc, drf_exceptions.APIException):
        return ApiError("VALIDATION_ERROR", str(exc.detail)).response()
    logger.exception("unhandled error in API view")
    return ApiError("INTERNAL_ERROR", "an internal error occurred; it has been logged").response()


def json_error(error_type, message):
    return JsonResponse(error_body(error_type, message), status=error_status(error_type))


def handler404(request, exception=None):
    return json_error("NOT_FOUND", f"no such endpoint: {request.path}")


def handler500(request):
    return json_error("INTERNAL_ERROR", "an internal error occurred; it has been logged")


def handler400(request, exception=None):
    return json_error("VALIDATION_ERROR", "bad request")
