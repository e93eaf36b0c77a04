"""Refuse a request body over its limit before reading it."""

from django.conf import settings

from .errors import EngineError


def reject_oversized_body(request, limit=None):
    """VALIDATION_ERROR for a body over `limit` bytes (default MAX_REQUEST_BYTES), before it is read."""
    limit = limit or settings.MAX_REQUEST_BYTES
    length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        too_big = int(length) > limit
    except ValueError:
        raise EngineError("VALIDATION_ERROR", "invalid Content-Length header") from None
    if too_big:
        raise EngineError("VALIDATION_ERROR", f"the body is over the limit of {limit} bytes")
