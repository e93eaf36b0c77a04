from django.conf import settings

from .envelope import json_error
from .load_shedding import admit_request, request_done

# Never refused, so that an overloaded process is still seen alive and measured.
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
RETRY_AFTER_SECONDS = 1


class LoadSheddingMiddleware:
    """QUEUE_FULL with Retry-After, at once, for a request arriving while this
    process works on WEB_ACTIVE_REQUEST_LIMIT others or runs more than
    WEB_MAX_LAG_MS late (core.load_shedding)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path in EXEMPT_PATHS:
            return self.get_response(request)
        if not admit_request(settings.WEB_ACTIVE_REQUEST_LIMIT, settings.WEB_MAX_LAG_MS / 1000):
            response = json_error("QUEUE_FULL", "this server is at capacity; try again shortly")
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        try:
            return self.get_response(request)
        finally:
            request_done()
