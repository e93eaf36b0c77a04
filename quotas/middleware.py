from .enforcement import usage_today


class RateLimitHeadersMiddleware:
    """Every response to an authenticated API call carries the caller's daily
    quota: X-RateLimit-Limit / -Remaining (absent for an unlimited tier) and
    X-RateLimit-Reset (the next UTC midnight, as a Unix time)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        organization = getattr(request, "quota_organization", None)
        if organization is not None and "X-RateLimit-Reset" not in response:
            for name, value in usage_today(organization).headers().items():
                response[name] = value
        return response
