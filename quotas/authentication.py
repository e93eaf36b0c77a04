"""Bearer API keys: `pex_<prefix>_<secret>`, looked up by prefix, compared by hash."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import API_KEY_PREFIX, ApiKey

# last_used_at is a hint for operators, not an audit trail: writing it on
# every request would put a write on the hot path.
LAST_USED_RESOLUTION = timedelta(minutes=1)
GENERIC_FAILURE = "invalid or revoked API key"


class ApiPrincipal:
    """The caller behind a request: an organization, through one of its keys."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.organization = api_key.organization
        self.is_staff = api_key.is_staff

    def __str__(self):
        return f"{self.organization.slug}:{self.api_key.prefix}"


def parse_key(token):
    """Split a presented key into (prefix, secret), or None if malformed."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def authenticate_key(token):
    parsed = parse_key(token)
    if parsed is None:
        return None
    prefix, secret = parsed
    api_key = ApiKey.objects.active().select_related("organization__tier").filter(prefix=prefix).first()
    # Every failure looks the same to the caller: unknown prefix, wrong secret
    # and revoked key must not be told apart.
    if api_key is None or not api_key.matches(secret):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not token.strip():
            raise exceptions.AuthenticationFailed("the Authorization header must be 'Bearer <api key>'")
        api_key = authenticate_key(token.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed(GENERIC_FAILURE)
        return ApiPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
