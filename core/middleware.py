import json

from django.conf import settings
from django.urls import is_valid_path

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


class TolerateTrailingSlash:
    """A GET or HEAD of a path with a trailing slash that names no endpoint,
    such as /plugins/, is served as the path without it, when that one does.
    The API's paths have no trailing slash; a client or a person adding one
    should still get the page, not a 404. Writes are left alone: a client
    sending one to a wrong path had better be told."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if request.method in ("GET", "HEAD") and len(path) > 1 and path.endswith("/"):
            urlconf = getattr(request, "urlconf", None)
            bare = path.rstrip("/")
            if bare and not is_valid_path(path, urlconf) and is_valid_path(bare, urlconf):
                request.path_info = bare
                request.path = request.path[: len(request.path) - len(path)] + bare
        return self.get_response(request)
