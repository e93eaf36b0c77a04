import json

from django.conf import settings

from .envelope import error_body
from .load_shedding import admit_request, request_done

# Never refused, so that an overloaded process is still seen alive and measured.
EXEMPT_PATHS = frozenset({"/health", "/metrics"})
RETRY_AFTER_SECONDS = 1


class ShedExcessRequests:
    """WSGI middleware around the whole Django application, installed in each
    gunicorn worker (executor_project/gunicorn.conf.py): a request arriving
    while the process works on WEB_ACTIVE_REQUEST_LIMIT others, or after it
    waited more than WEB_MAX_LAG_MS in a process running that late
    (core.load_shedding), gets 503 QUEUE_FULL with
    Retry-After at once. Before Django, so that a refusal costs no request
    object, no middleware and no signal: under overload most requests are
    refusals, and each must cost next to nothing."""

    def __init__(self, application):
        self.application = application
        body = error_body("QUEUE_FULL", "this server is at capacity; try again shortly")
        self.refusal = json.dumps(body, separators=(",", ":")).encode()
        self.refusal_headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(self.refusal))),
            ("Retry-After", str(RETRY_AFTER_SECONDS)),
        ]

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") in EXEMPT_PATHS:
            return self.application(environ, start_response)
        if not admit_request(settings.WEB_ACTIVE_REQUEST_LIMIT, settings.WEB_MAX_LAG_MS / 1000,
                             environ.get("gunicorn.socket")):
            start_response("503 Service Unavailable", list(self.refusal_headers))
            return [self.refusal]
        try:
            return self.application(environ, start_response)
        finally:
            request_done()
