"""What happens when a run fails: retry it, fall back, tell the owner."""

import datetime as dt
import logging
import random

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent

from . import cache

logger = logging.getLogger(__name__)

# Failures that another try may not repeat; anything else would fail again.
RETRYABLE_ERRORS = {"TIMEOUT", "NETWORK_ERROR", "WORKER_CRASHED"}
# Failures the caller caused (the plugin rejected its params): not retried,
# not replaced by a fallback, not the owner's concern, not the breaker's.
CALLER_ERRORS = {"VALIDATION_ERROR"}
# A retry that would have less than this left of the request's timeout is
# not started.
MIN_ATTEMPT_MS = 100


def should_retry(error_type, action, retries_so_far):
    """Retry transient failures of actions that are safe to run twice.

    A manifest marks an action with side effects `"idempotent": false`.
    """
    return (
        error_type in RETRYABLE_ERRORS
        and action.get("idempotent", True) is not False
        and retries_so_far < settings.RETRY_MAX_RETRIES
    )


def backoff_seconds(retry_number):
    """1 s, 2 s, 4 s … (RETRY_BACKOFF_SECONDS), each ± RETRY_JITTER_FRACTION."""
    schedule = settings.RETRY_BACKOFF_SECONDS
    base = schedule[min(retry_number, len(schedule)) - 1]
    return max(0.0, base * (1 + random.uniform(-1, 1) * settings.RETRY_JITTER_FRACTION))


def fallback(execution, action):
    """(kind, result) to answer with instead of the error, or None: a recent
    cached result for the same key, else the action's declared default."""
    if execution.cache_key:
        stale = cache.lookup_stale(execution.cache_key)
        if stale is not None:
            return "stale_cache", stale
    if action.get("default") is not None:
        return "default", action["default"]
    return None


def notify_owner(organization, plugin_slug, reason):
    """Tell the organization's owner a plugin is failing for them, at most
    once per OWNER_NOTIFY_INTERVAL_SECONDS per plugin."""
    since = timezone.now() - dt.timedelta(seconds=settings.OWNER_NOTIFY_INTERVAL_SECONDS)
    recent = AuditEvent.objects.filter(
        type=AuditEvent.Type.OWNER_NOTIFIED, organization=organization, target_id=plugin_slug, timestamp__gte=since
    )
    if recent.exists():
        return False
    emailed = False
    if organization.owner_email:
        try:
            send_mail(
                f"[plugin engine] {plugin_slug} is failing for {organization.slug}",
                f"Runs of the plugin {plugin_slug} are failing for {organization.name}: {reason}\n",
                settings.DEFAULT_FROM_EMAIL,
                [organization.owner_email],
            )
            emailed = True
        except Exception:  # a mail server being down must not fail the run's record
            logger.exception("could not email the owner of %s", organization.slug)
    record_event(
        AuditEvent.Type.OWNER_NOTIFIED,
        organization=organization,
        target_id=plugin_slug,
        metadata={"pluginId": plugin_slug, "reason": reason, "to": organization.owner_email or None, "emailed": emailed},
    )
    return True
