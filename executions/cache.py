"""The result cache: successful results of cacheable actions, shared by every
process and node through the database.

Key: a hash of the organization, plugin, version, action, the params in
canonical form (key order and nesting don't matter) and a keyed fingerprint
of the secrets the action receives — so another organization, another
version or other credentials never share an entry. A new version is a new
key, so an upload never serves the old version's results. Invalidation of a
plugin is one indexed DELETE; no key is scanned.
"""

import datetime as dt
import hashlib
import hmac
import json
import zlib

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from core import sql

from .models import CachedResult, Execution


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def secrets_fingerprint(secrets):
    """Keyed, so the stored key reveals nothing about the secret values."""
    if not secrets:
        return ""
    return hmac.new(settings.SECRET_KEY.encode(), canonical_json(secrets).encode(), hashlib.sha256).hexdigest()


def cache_key(organization, plugin_version, action_name, params, granted_secrets):
    material = canonical_json(
        [
            organization.pk,
            plugin_version.plugin.slug,
            plugin_version.version,
            plugin_version.sha256,
            action_name,
            params,
            secrets_fingerprint(granted_secrets),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def is_cacheable(action):
    return settings.CACHE_ENABLED and bool(action.get("cacheable"))


def _decoded(payload, compressed):
    payload = bytes(payload)
    return json.loads(zlib.decompress(payload) if compressed else payload)


def lookup(key):
    """The fresh cached result for `key`, or None. Every request for a
    cacheable action asks: hand-written SQL (core.sql)."""
    row = sql.fetch_one(
        'SELECT payload, compressed FROM executions_cachedresult WHERE "key" = %s AND expires_at > %s',
        [key, sql.db_value(CachedResult, "expires_at", timezone.now())],
    )
    return _decoded(*row) if row is not None else None


def lookup_stale(key):
    """A result for `key` past its TTL but inside the stale window, or None."""
    horizon = timezone.now() - dt.timedelta(seconds=settings.CACHE_STALE_SECONDS)
    entry = CachedResult.objects.filter(key=key, created_at__gt=horizon).first()
    return _decoded(entry.payload, entry.compressed) if entry is not None else None


def store(key, execution, result):
    encoded = canonical_json(result).encode()
    compressed = len(encoded) >= settings.CACHE_COMPRESS_THRESHOLD_BYTES
    payload = zlib.compress(encoded, 6) if compressed else encoded
    now = timezone.now()
    CachedResult.objects.update_or_create(
        key=key,
        defaults={
            "plugin_slug": execution.plugin_version.plugin.slug,
            "organization": execution.organization,
            "payload": payload,
            "compressed": compressed,
            "size_bytes": len(payload),
            "created_at": now,
            "expires_at": now + dt.timedelta(milliseconds=settings.CACHE_TTL_MS),
        },
    )
    _cull()


def _cull():
    """Keep at most CACHE_MAX_ENTRIES. The organization holding the most
    entries loses its oldest first: a tenant storing many distinct results
    pushes out its own, not everyone's."""
    excess = CachedResult.objects.count() - settings.CACHE_MAX_ENTRIES
    if excess <= 0:
        return
    heaviest = (
        CachedResult.objects.values("organization").annotate(entries=Count("pk")).order_by("-entries")[:1].get()
    )["organization"]
    oldest = (
        CachedResult.objects.filter(organization=heaviest).order_by("created_at").values_list("pk", flat=True)[:excess]
    )
    CachedResult.objects.filter(pk__in=list(oldest)).delete()


def invalidate_plugin(plugin_slug, *, actor_id="", organization=None):
    """Drop every cached result of one plugin; returns how many."""
    with transaction.atomic():
        removed, _ = CachedResult.objects.filter(plugin_slug=plugin_slug).delete()
        record_event(
            AuditEvent.Type.CACHE_INVALIDATED,
            organization=organization,
            actor_id=actor_id,
            target_id=plugin_slug,
            metadata={"pluginId": plugin_slug, "entriesRemoved": removed},
        )
    return removed


def clear(*, actor_id="", organization=None):
    """Drop every cached result; returns how many."""
    with transaction.atomic():
        removed, _ = CachedResult.objects.all().delete()
        record_event(
            AuditEvent.Type.CACHE_CLEARED,
            organization=organization,
            actor_id=actor_id,
            metadata={"entriesRemoved": removed},
        )
    return removed


def size_bytes():
    """Bytes held by every entry, fresh or kept as a stale fallback."""
    return CachedResult.objects.aggregate(total=Sum("size_bytes"))["total"] or 0


def stats(window=dt.timedelta(hours=24)):
    """Keys, size, and hits/misses of cacheable runs in the window (from the
    execution records, so every process's lookups count)."""
    now = timezone.now()
    live = CachedResult.objects.filter(expires_at__gt=now)
    recent = Execution.objects.filter(queued_at__gte=now - window).exclude(cache_key="")
    # One pass over the window's runs, not one per count.
    counted = recent.aggregate(runs=Count("pk"), hits=Count("pk", filter=Q(cache_hit=True)))
    hits, misses = counted["hits"], counted["runs"] - counted["hits"]
    return {
        "keys": live.count(),
        "entries": CachedResult.objects.count(),
        "sizeBytes": size_bytes(),
        "hits": hits,
        "misses": misses,
        "hitRate": round(hits / (hits + misses), 4) if hits + misses else None,
        "maxEntries": settings.CACHE_MAX_ENTRIES,
        "ttlMs": settings.CACHE_TTL_MS,
        "enabled": settings.CACHE_ENABLED,
    }
