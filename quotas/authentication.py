"""Who is calling: API keys (`pex_<prefix>_<secret>`, looked up by prefix,
compared by hash) or, where a deployment already issues them, JWT bearer
tokens whose claims name the organization and the actor."""

import hashlib
import time
from datetime import timedelta

import jwt
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from core import sql
from core.client_address import client_address

from .models import API_KEY_PREFIX, ApiKey, Organization, Tier

# last_used_at is a hint for operators, not an audit trail: writing it on
# every request would put a write on the hot path.
LAST_USED_RESOLUTION = timedelta(minutes=1)
GENERIC_FAILURE = "invalid or revoked credentials"
MISSING_SCHEME = "the Authorization header needs its scheme: 'Authorization: Bearer <api key>'"


class ApiPrincipal:
    """The caller behind a request: an organization, through a key or a token."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, organization, *, is_staff=False, api_key=None, actor_id=""):
        self.organization = organization
        self.is_staff = is_staff
        self.api_key = api_key
        self.actor_id = actor_id

    def __str__(self):
        return f"{self.organization.slug}:{self.api_key.prefix if self.api_key else self.actor_id}"


def parse_key(token):
    """Split a presented key into (prefix, secret), or None if malformed."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


KEY_COLUMNS = sql.Columns(ApiKey, "k")
ORGANIZATION_COLUMNS = sql.Columns(Organization, "o")
TIER_COLUMNS = sql.Columns(Tier, "t")


def active_key(prefix):
    """The unrevoked key with this prefix, its organization and tier joined
    in; None if there is none. Every request asks: hand-written SQL (core.sql)."""
    row = sql.fetch_one(
        f"SELECT {KEY_COLUMNS.sql}, {ORGANIZATION_COLUMNS.sql}, {TIER_COLUMNS.sql} FROM quotas_apikey k"
        " JOIN quotas_organization o ON o.id = k.organization_id JOIN quotas_tier t ON t.id = o.tier_id"
        " WHERE k.prefix = %s AND k.revoked_at IS NULL",
        [prefix],
    )
    if row is None:
        return None
    api_key = KEY_COLUMNS.instance(row)
    organization = ORGANIZATION_COLUMNS.instance(row, KEY_COLUMNS.width)
    organization.tier = TIER_COLUMNS.instance(row, KEY_COLUMNS.width + ORGANIZATION_COLUMNS.width)
    api_key.organization = organization
    return api_key


def authenticate_key(token):
    parsed = parse_key(token)
    if parsed is None:
        return None
    prefix, secret = parsed
    api_key = active_key(prefix)
    # Every failure looks the same to the caller: unknown prefix, wrong secret
    # and revoked key must not be told apart.
    if api_key is None or not api_key.matches(secret):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return ApiPrincipal(api_key.organization, is_staff=api_key.is_staff, api_key=api_key)


def jwt_enabled():
    return bool(settings.JWT_KEY)


def authenticate_jwt(token):
    """A principal from a verified token, or None. Issuer, audience, expiry
    and signature are all required; the organization must exist here."""
    try:
        claims = jwt.decode(
            token,
            settings.JWT_KEY,
            algorithms=settings.JWT_ALGORITHMS,
            audience=settings.JWT_AUDIENCE or None,
            issuer=settings.JWT_ISSUER or None,
            options={"require": ["exp", "iat"] + (["iss"] if settings.JWT_ISSUER else []) + (["aud"] if settings.JWT_AUDIENCE else [])},
            leeway=30,
        )
    except jwt.PyJWTError:
        return None
    slug = claims.get(settings.JWT_ORGANIZATION_CLAIM)
    organization = Organization.objects.select_related("tier").filter(slug=slug).first() if isinstance(slug, str) else None
    if organization is None:
        return None
    return ApiPrincipal(
        organization,
        is_staff=claims.get(settings.JWT_STAFF_CLAIM) is True,
        actor_id=str(claims.get(settings.JWT_ACTOR_CLAIM, ""))[:200],
    )


class FailedAuthLimiter:
    """Counts failed authentications per client address, presented key and
    minute, so that keys can't be guessed at speed. The key's public prefix
    is part of the count so that one client failing with its key does not
    lock out the others behind the same address (a NAT, a proxy) that
    present theirs; guessing a key's secret means presenting its prefix.
    Approximate across processes (a cache counter), which is all a
    brute-force brake needs."""

    @staticmethod
    def counter(request, key_id):
        """The cache key counting this client's failures with `key_id` this minute."""
        caller = f"{client_address(request)} {key_id}"
        window = int(time.time() // 60)
        return f"auth-failures:{hashlib.sha256(caller.encode()).hexdigest()[:16]}:{window}"

    def blocked(self, counter):
        return (cache.get(counter) or 0) >= settings.AUTH_FAILURES_PER_MINUTE

    def record_failure(self, counter):
        if not cache.add(counter, 1, 120):
            try:
                cache.incr(counter)
            except ValueError:
                cache.set(counter, 1, 120)


limiter = FailedAuthLimiter()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        without_scheme = scheme.lower() != self.keyword.lower()
        token = "" if without_scheme else token.strip()
        key = parse_key(token)
        # JWTs and malformed credentials have no key id: counted per address.
        counter = limiter.counter(request, key[0] if key else "")
        if limiter.blocked(counter):
            raise exceptions.Throttled(wait=60 - int(time.time()) % 60)
        if without_scheme:
            limiter.record_failure(counter)
            raise exceptions.AuthenticationFailed(MISSING_SCHEME)
        principal = None
        if key:
            principal = authenticate_key(token)
        elif jwt_enabled() and token.count(".") == 2:
            principal = authenticate_jwt(token)
        if principal is None:
            limiter.record_failure(counter)
            raise exceptions.AuthenticationFailed(GENERIC_FAILURE)
        # Read by quotas.middleware to put the rate-limit headers on the response.
        request._request.quota_organization = principal.organization
        return principal, principal.api_key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'
