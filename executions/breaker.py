"""Per-plugin circuit breakers, kept in the database so every node sees the
same state. Every state change goes through `_move`, which writes the
`circuit_breaker_state_changed` event in the same transaction."""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent

from .models import CircuitBreaker

State = CircuitBreaker.State


class CircuitOpen(Exception):
    def __init__(self, plugin_slug, retry_after):
        super().__init__(f"plugin {plugin_slug!r} is failing; its circuit breaker is open")
        self.retry_after = max(1, int(retry_after))


def _locked(plugin):
    CircuitBreaker.objects.get_or_create(plugin=plugin)
    return CircuitBreaker.objects.select_for_update().select_related("plugin").get(plugin=plugin)


def _move(breaker, state, *, actor_id="", reason=""):
    previous = breaker.state
    breaker.state = state
    if state == State.OPEN:
        breaker.opened_at = timezone.now()
    if state in (State.OPEN, State.HALF_OPEN, State.CLOSED):
        breaker.probes_in_flight = 0
        breaker.probe_successes = 0
    if state == State.CLOSED:
        breaker.consecutive_failures = 0
    breaker.save()
    record_event(
        AuditEvent.Type.CIRCUIT_BREAKER_STATE_CHANGED,
        organization=breaker.plugin.owner,
        actor_id=actor_id,
        target_id=breaker.plugin.slug,
        metadata={"pluginId": breaker.plugin.slug, "from": previous, "to": state, "reason": reason,
                  "consecutiveFailures": breaker.consecutive_failures},
    )


def admit(plugin):
    """Let a run through, or raise CircuitOpen. A breaker open for
    BREAKER_OPEN_SECONDS turns half-open and admits that many probes."""
    if not CircuitBreaker.objects.filter(plugin=plugin).exclude(state=State.CLOSED).exists():
        return
    with transaction.atomic():
        breaker = _locked(plugin)
        now = timezone.now()
        if breaker.state == State.OPEN:
            waited = (now - breaker.opened_at).total_seconds()
            if waited < settings.BREAKER_OPEN_SECONDS:
                raise CircuitOpen(plugin.slug, settings.BREAKER_OPEN_SECONDS - waited)
            _move(breaker, State.HALF_OPEN, reason=f"open for {settings.BREAKER_OPEN_SECONDS} s")
        if breaker.state == State.HALF_OPEN:
            # Probes whose runs were lost (a dead worker) must not hold the
            # breaker half-open for ever.
            if now - breaker.updated_at > dt.timedelta(seconds=settings.BREAKER_OPEN_SECONDS):
                breaker.probes_in_flight = 0
            if breaker.probes_in_flight >= settings.BREAKER_HALF_OPEN_PROBES:
                raise CircuitOpen(plugin.slug, 1)
            breaker.probes_in_flight += 1
            breaker.save(update_fields=["probes_in_flight", "updated_at"])


def record_outcome(plugin, succeeded):
    """Count one run of the plugin in the sandbox."""
    if succeeded and not CircuitBreaker.objects.filter(plugin=plugin).exclude(
        state=State.CLOSED, consecutive_failures=0
    ).exists():
        return  # the common case: a healthy plugin stays as it is, with no write
    with transaction.atomic():
        breaker = _locked(plugin)
        if succeeded:
            if breaker.state == State.HALF_OPEN:
                breaker.probe_successes += 1
                breaker.probes_in_flight = max(0, breaker.probes_in_flight - 1)
                if breaker.probe_successes >= settings.BREAKER_HALF_OPEN_PROBES:
                    _move(breaker, State.CLOSED, reason=f"{breaker.probe_successes} probes succeeded")
                else:
                    breaker.save(update_fields=["probe_successes", "probes_in_flight", "updated_at"])
            elif breaker.consecutive_failures:
                breaker.consecutive_failures = 0
                breaker.save(update_fields=["consecutive_failures", "updated_at"])
            return
        breaker.consecutive_failures += 1
        if breaker.state == State.HALF_OPEN:
            _move(breaker, State.OPEN, reason="a probe failed")
        elif breaker.state == State.CLOSED and breaker.consecutive_failures >= settings.BREAKER_FAILURE_THRESHOLD:
            _move(breaker, State.OPEN, reason=f"{breaker.consecutive_failures} consecutive failures")
        else:
            breaker.save(update_fields=["consecutive_failures", "updated_at"])


def is_open(plugin):
    return CircuitBreaker.objects.filter(plugin=plugin, state=State.OPEN).exists()


def reset(plugin, *, actor_id=""):
    """Close a breaker by hand (admin action)."""
    with transaction.atomic():
        breaker = _locked(plugin)
        if breaker.state != State.CLOSED or breaker.consecutive_failures:
            _move(breaker, State.CLOSED, actor_id=actor_id, reason="reset by an operator")


def open_breakers():
    return [
        {"pluginId": b.plugin.slug, "state": b.state, "openedAt": b.opened_at, "consecutiveFailures": b.consecutive_failures}
        for b in CircuitBreaker.objects.exclude(state=State.CLOSED).select_related("plugin")
    ]
