"""The worker side of `ctx.http`: the allowlist, the per-organization and
per-plugin rate limit and the audit trail around `egress.fetch`."""

import base64
import datetime as dt
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from egress import (
    EgressDenied,
    EgressFailed,
    EgressPolicy,
    fetch,
    normalize_domain_entry,
)
from sandbox.client import clean_text

from .models import EgressWindow
from .redaction import Redactor


def host_of(url):
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def pattern_covers(wide, narrow):
    """Whether allowlist entry `wide` allows every host `narrow` allows."""
    if not wide.startswith("*."):
        return wide == narrow
    suffix = wide[1:]  # ".example.com"
    name = narrow[2:] if narrow.startswith("*.") else narrow
    return name.endswith(suffix) or (narrow.startswith("*.") and "." + name == suffix)


def bounded_domains(manifest_domains, operator_domains):
    """The hosts both lists allow: a manifest asks, the operator's ALLOWED_DOMAINS bounds it."""
    manifest = [normalize_domain_entry(d) for d in manifest_domains]
    if not operator_domains:
        return manifest
    operator = [normalize_domain_entry(d) for d in operator_domains]
    allowed = [m for m in manifest if any(pattern_covers(o, m) for o in operator)]
    allowed += [o for o in operator if any(pattern_covers(m, o) for m in manifest) and o not in allowed]
    return allowed


def take_egress_slot(organization_id, plugin_slug, limit_per_minute):
    """Count one request of this organization's runs of this plugin in the
    current minute; False if over the limit.

    Exact under concurrency: the count is raised by one conditional UPDATE
    (`count < limit`), which the database applies atomically under the row's
    lock, so concurrent workers never read-modify-write the same count."""
    now = timezone.now()
    window_start = now.replace(second=0, microsecond=0)
    key = {"organization_id": organization_id, "plugin_slug": plugin_slug, "window_start": window_start}
    with transaction.atomic():
        _, created = EgressWindow.objects.get_or_create(**key)
        taken = EgressWindow.objects.filter(**key, count__lt=limit_per_minute).update(count=F("count") + 1)
        if created:  # once a minute per key is enough to keep the table small
            EgressWindow.objects.filter(window_start__lt=window_start - dt.timedelta(minutes=10)).delete()
    return bool(taken)


# How much of the text a child chose an audit event keeps (a host name is at
# most 253 characters).
RECORDED_METHOD_CHARS = 16
RECORDED_HOST_CHARS = 253
RECORDED_REASON_CHARS = 500


def recordable(value, limit):
    """Child-chosen text as an audit event may hold it: at most `limit`
    characters, and no NUL or lone surrogate, which PostgreSQL refuses (the
    refusal would end the run as WORKER_CRASHED). Anything but text is not
    recorded at all."""
    if not isinstance(value, str):
        return ""
    return clean_text(value[:limit])


class EgressGateway:
    def __init__(self, execution, secrets):
        self.execution = execution
        self.plugin_slug = execution.plugin_version.plugin.slug
        manifest_domains = (execution.plugin_version.manifest.get("network") or {}).get("allowedDomains") or []
        self.allowed_domains = bounded_domains(manifest_domains, settings.ALLOWED_DOMAINS)
        self.redactor = Redactor(secrets.values())

    def policy(self):
        return EgressPolicy(
            allowed_domains=self.allowed_domains,
            max_response_bytes=settings.EGRESS_MAX_RESPONSE_BYTES,
            timeout_seconds=settings.EGRESS_TIMEOUT_SECONDS,
        )

    def take_slot(self):
        """Called by `fetch` only once the request has passed every check."""
        limit = settings.EGRESS_RATE_LIMIT_PER_MINUTE
        if not take_egress_slot(self.execution.organization_id, self.plugin_slug, limit):
            raise EgressDenied(
                f"rate limit: this plugin may make {limit} requests per minute for your organization", "rate_limited"
            )

    def __call__(self, frame):
        # The frame is the child's: its values go to `fetch` as they are (it
        # checks them), and reach the audit event only through `recordable`.
        method = frame.get("method", "GET")
        url = frame.get("url", "")
        started = time.monotonic()
        metadata = {
            "executionId": str(self.execution.id),
            "pluginId": self.plugin_slug,
            "method": self._recordable(method, RECORDED_METHOD_CHARS),
            "host": self._recordable(host_of(url), RECORDED_HOST_CHARS) or None,
        }
        try:
            body = base64.b64decode(frame["body"]) if frame.get("body") else None
            response = fetch(
                self.policy(), method, url, headers=frame.get("headers") or {}, body=body, before_send=self.take_slot
            )
        except EgressDenied as error:
            return self._refused("denied", str(error), metadata, started)
        except EgressFailed as error:
            return self._refused("failed", str(error), metadata, started)
        except (ValueError, TypeError) as error:
            return self._refused("denied", f"malformed request: {error}", metadata, started)
        metadata.update(
            status=response.status,
            bytes=response.bytes_received,
            durationMs=round((time.monotonic() - started) * 1000, 1),
            allowed=True,
        )
        self._log(metadata)
        return {
            "ok": True,
            "status": response.status,
            "headers": dict(response.headers),
            "body": base64.b64encode(response.body).decode(),
            "url": response.url,
        }

    def _recordable(self, value, limit):
        # Redacted before it is cut, so that no part of a secret survives the cut.
        return recordable(self.redactor.text(value) if isinstance(value, str) else value, limit)

    def _refused(self, kind, message, metadata, started):
        metadata.update(
            allowed=False,
            reason=self._recordable(message, RECORDED_REASON_CHARS),
            durationMs=round((time.monotonic() - started) * 1000, 1),
        )
        self._log(metadata)
        return {"ok": False, "kind": kind, "message": message}

    def _log(self, metadata):
        record_event(
            AuditEvent.Type.EGRESS_REQUEST,
            organization=self.execution.organization,
            actor_id=self.execution.actor_id,
            target_id=self.plugin_slug,
            # Every string in it is already redacted: the plugin chose the
            # method and the URL, and the reason may quote them.
            metadata=metadata,
        )
