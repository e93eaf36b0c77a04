"""The API's error envelope, and the one place that shapes it:
`{"success": false, "executionId"?, "error": {"type", "message", "retryable", "details"?}}`.

Every failure a client can see is an `EngineError` (or a DRF or Django
exception translated here), so the type, the HTTP status, `retryable` and
the `Retry-After` header always agree.
"""

import logging

from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from .errors import EngineError, is_retryable, shortened

logger = logging.getLogger(__name__)

HTTP_STATUS = {
    "VALIDATION_ERROR": 400,
    "AUTHENTICATION_FAILED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "PLUGIN_NOT_FOUND": 404,
    "ACTION_NOT_FOUND": 404,
    "EXECUTION_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "PLUGIN_DISABLED": 409,
    "IDEMPOTENCY_CONFLICT": 409,
    "QUOTA_EXCEEDED": 429,
    "CONCURRENCY_LIMIT": 429,
    "RATE_LIMITED": 429,
    "QUEUE_FULL": 503,
    "SHUTTING_DOWN": 503,
    "CIRCUIT_OPEN": 503,
    "SANDBOX_UNAVAILABLE": 503,
    "TIMEOUT": 504,
    "NETWORK_ERROR": 502,
    "WORKER_CRASHED": 500,
    "PLUGIN_ERROR": 500,
    "MEMORY_LIMIT_EXCEEDED": 500,
    "OUTPUT_LIMIT_EXCEEDED": 500,
    "SANDBOX_VIOLATION": 500,
    "INTERNAL_ERROR": 500,
}


def error_status(error_type):
    return HTTP_STATUS.get(error_type, 500)


def error_body(error_type, message, *, details=None, execution_id=None):
    error = {"type": error_type, "message": message, "retryable": is_retryable(error_type)}
    if details:
        error["details"] = details
    body = {"success": False}
    if execution_id:
        body["executionId"] = str(execution_id)
    body["error"] = error
    return body


def error_response(error, headers=None):
    """The envelope of an `EngineError`, with its status and headers."""
    headers = dict(headers or {})
    if error.quota is not None:
        headers.update(error.quota.headers())
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return envelope_response(engine_error_body(error), headers=headers)


def envelope_response(body, *, status=None, headers=None):
    """A response carrying an error envelope (`body`), with its type's status
    unless told another.

    Django's request logger logs every 5xx as "Internal Server Error". A
    designed answer (a plugin's failure, a timeout, an open breaker, a full
    queue) is no fault of the service: it is logged here, once, as a warning
    naming its type, and the request logger is told so. An INTERNAL_ERROR
    is left to it.
    """
    error = body["error"]
    response = Response(body, status=status or error_status(error["type"]), headers=headers)
    if response.status_code >= 500 and error["type"] != "INTERNAL_ERROR":
        logger.warning("answered %s %s%s: %s", response.status_code, error["type"],
                       f" (execution {body['executionId']})" if "executionId" in body else "", error["message"])
        response._has_been_logged = True  # read by django.utils.log.log_response
    return response


def engine_error_body(error):
    """The envelope of an `EngineError`, without its status and headers."""
    return error_body(error.error_type, error.message, details=error.details, execution_id=error.execution_id)


def validation_error(exc):
    """The VALIDATION_ERROR of a DRF ValidationError, naming each field."""
    details = _validation_details(exc.detail)
    summary = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"] for d in details[:5])
    return EngineError("VALIDATION_ERROR", f"invalid request: {summary}", details=details)


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
                items.append({"field": prefix, "message": shortened(str(value))})
        return items
    return [{"field": prefix, "message": shortened(str(detail))}]


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every exception a view lets out becomes the envelope."""
    if isinstance(exc, EngineError):
        return error_response(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        return error_response(validation_error(exc))
    if isinstance(exc, drf_exceptions.ParseError):
        return error_response(EngineError("VALIDATION_ERROR", f"the body could not be parsed: {exc.detail}"))
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        # Most endpoints take JSON, POST /plugins takes multipart: name what this one takes.
        accepted = " or ".join(parser.media_type for parser in context["view"].get_parsers())
        return error_response(EngineError("VALIDATION_ERROR", f"the body must be sent as {accepted} (Content-Type)"))
    if isinstance(exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)):
        return error_response(
            EngineError("AUTHENTICATION_FAILED", str(exc.detail)), headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if isinstance(exc, drf_exceptions.PermissionDenied):
        return error_response(EngineError("PERMISSION_DENIED", str(exc.detail)))
    if isinstance(exc, drf_exceptions.NotFound):
        return error_response(EngineError("NOT_FOUND", str(exc.detail)))
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return error_response(EngineError("METHOD_NOT_ALLOWED", str(exc.detail)))
    if isinstance(exc, drf_exceptions.Throttled):
        return error_response(EngineError("RATE_LIMITED", "too many requests", retry_after=int(exc.wait or 1)))
    if isinstance(exc, drf_exceptions.APIException):
        return error_response(EngineError("VALIDATION_ERROR", str(exc.detail)))
    logger.exception("unhandled error in API view")
    return error_response(EngineError("INTERNAL_ERROR", "an internal error occurred; it has been logged"))


def json_error(error_type, message):
    return JsonResponse(error_body(error_type, message), status=error_status(error_type))


def handler404(request, exception=None):
    return json_error("NOT_FOUND", f"no such endpoint: {request.path}")


def handler500(request):
    return json_error("INTERNAL_ERROR", "an internal error occurred; it has been logged")


def handler400(request, exception=None):
    return json_error("VALIDATION_ERROR", "bad request")
