"""Circuit breakers, kept in the database so every node sees the same state.

A breaker measures the plugin, not its callers. Each plugin has a breaker
for every organization (its row has no organization) and, for a public
plugin, one per organization whose runs of it failed. One organization's
consecutive failures open its own breaker only: it cannot switch a shared
plugin off for the others. The breaker for everyone opens on consecutive
failures from more than one organization, or from the plugin's owner. What
a run says about the plugin (failures a caller causes for itself count for
nothing) is decided by executions.tasks.plugin_verdict.

Every state change goes through `_move`, which writes the
`circuit_breaker_state_changed` event in the same transaction.

Exact across processes and nodes: the rows are locked (SELECT … FOR UPDATE,
always in primary-key order) on PostgreSQL; on SQLite, where FOR UPDATE is
a no-op, the IMMEDIATE transactions (settings.DATABASES' transaction_mode)
take the write lock at their start, so only one writer runs at a time.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from core import sql

from .models import CircuitBreaker

State = CircuitBreaker.State


class CircuitOpen(Exception):
    def __init__(self, plugin_slug, retry_after, *, for_everyone):
        whom = "for every organization" if for_everyone else "for this organization only"
        super().__init__(f"plugin {plugin_slug!r} is failing; its circuit breaker is open {whom}")
        self.retry_after = max(1, int(retry_after))
        self.scope = "all" if for_everyone else "organization"


def _in_scope(plugin, organization):
    """The breakers that decide for `organization`: the one for everyone and its own."""
    return CircuitBreaker.objects.filter(Q(organization__isnull=True) | Q(organization=organization), plugin=plugin)


def _any_in_scope(plugin, organization, unsettled):
    """Whether a breaker in scope is not closed (or, with `unsettled`, has
    also failures counted). Every admission and every run's end asks, and
    the answer is nearly always no: hand-written SQL (core.sql)."""
    condition = "(state <> %s OR consecutive_failures > 0)" if unsettled else "state <> %s"
    return sql.fetch_one(
        "SELECT 1 FROM executions_circuitbreaker WHERE plugin_id = %s"
        f" AND (organization_id IS NULL OR organization_id = %s) AND {condition} LIMIT 1",
        [plugin.pk, organization.pk, State.CLOSED],
    ) is not None


def _is_owner(plugin, organization):
    return plugin.owner_id is not None and plugin.owner_id == organization.id


def _locked(plugin, organization, *, create):
    """The breakers in scope, locked, the one for everyone first. With
    `create`, those a failure counts on are made first: an owner's failures
    count on the breaker for everyone alone."""
    if create:
        CircuitBreaker.objects.get_or_create(plugin=plugin, organization=None)
        if not _is_owner(plugin, organization):
            CircuitBreaker.objects.get_or_create(plugin=plugin, organization=organization)
    rows = list(_in_scope(plugin, organization).select_for_update().order_by("pk"))
    for row in rows:
        row.plugin = plugin
        if row.organization_id is not None:
            row.organization = organization
    return sorted(rows, key=lambda row: row.organization_id is not None)


def _move(breaker, state, *, actor_id="", reason=""):
    previous = breaker.state
    breaker.state = state
    if state == State.OPEN:
        breaker.opened_at = timezone.now()
    breaker.probes_in_flight = 0
    breaker.probe_successes = 0
    if state == State.CLOSED:
        breaker.consecutive_failures = 0
    if state in (State.HALF_OPEN, State.CLOSED):
        # Whose failures reopen it is asked afresh of the probes.
        breaker.last_failing_organization = None
        breaker.several_organizations = False
    breaker.save()
    scope = {"scope": "all"} if breaker.organization_id is None else {
        "scope": "organization", "organizationId": breaker.organization.slug}
    record_event(
        AuditEvent.Type.CIRCUIT_BREAKER_STATE_CHANGED,
        # The organization it is open for hears of its own breaker; the
        # owner (none for a public plugin: operators) of the one for everyone.
        organization=breaker.organization if breaker.organization_id is not None else breaker.plugin.owner,
        actor_id=actor_id,
        target_id=breaker.plugin.slug,
        metadata={"pluginId": breaker.plugin.slug, "from": previous, "to": state, "reason": reason,
                  "consecutiveFailures": breaker.consecutive_failures, **scope},
    )


def admit(plugin, organization):
    """Let `organization`'s run through, or raise CircuitOpen. A breaker open
    for BREAKER_OPEN_SECONDS turns half-open and admits that many probes.
    When all is closed (nearly always), one EXISTS query."""
    if not _any_in_scope(plugin, organization, unsettled=False):
        return
    refusal = None
    with transaction.atomic():
        breakers = [b for b in _locked(plugin, organization, create=False) if b.state != State.CLOSED]
        for breaker in breakers:
            refusal = refusal or _refusal(breaker)
        if refusal is None:
            for breaker in breakers:
                breaker.probes_in_flight += 1
                breaker.save(update_fields=["probes_in_flight", "updated_at"])
    # Raised after the commit: a breaker that turned half-open stays so.
    if refusal is not None:
        raise refusal


def _refusal(breaker):
    """CircuitOpen if this breaker refuses the run, else None (a probe it admits)."""
    now = timezone.now()
    for_everyone = breaker.organization_id is None
    if breaker.state == State.OPEN:
        waited = (now - breaker.opened_at).total_seconds()
        if waited < settings.BREAKER_OPEN_SECONDS:
            return CircuitOpen(breaker.plugin.slug, settings.BREAKER_OPEN_SECONDS - waited, for_everyone=for_everyone)
        _move(breaker, State.HALF_OPEN, reason=f"open for {settings.BREAKER_OPEN_SECONDS} s")
    # Probes whose runs were lost (a dead worker) must not hold the
    # breaker half-open for ever.
    if now - breaker.updated_at > dt.timedelta(seconds=settings.BREAKER_OPEN_SECONDS):
        breaker.probes_in_flight = 0
    if breaker.probes_in_flight >= settings.BREAKER_HALF_OPEN_PROBES:
        return CircuitOpen(breaker.plugin.slug, 1, for_everyone=for_everyone)
    return None


def record_outcome(plugin, organization, succeeded):
    """Count one run of the plugin for `organization`: succeeded True or
    False, or None when the run said nothing about the plugin (the caller's
    own failure), which only gives back the probe it may have been."""
    if succeeded is False:
        with transaction.atomic():
            for breaker in _locked(plugin, organization, create=True):
                _count_failure(breaker, organization)
        return
    if not _any_in_scope(plugin, organization, unsettled=True):
        return  # the common case: a healthy plugin stays as it is, with no write
    with transaction.atomic():
        for breaker in _locked(plugin, organization, create=False):
            if succeeded:
                _count_success(breaker)
            elif breaker.state == State.HALF_OPEN and breaker.probes_in_flight:
                breaker.probes_in_flight -= 1
                breaker.save(update_fields=["probes_in_flight", "updated_at"])


def _count_success(breaker):
    if breaker.state == State.HALF_OPEN:
        breaker.probe_successes += 1
        breaker.probes_in_flight = max(0, breaker.probes_in_flight - 1)
        if breaker.probe_successes >= settings.BREAKER_HALF_OPEN_PROBES:
            _move(breaker, State.CLOSED, reason=f"{breaker.probe_successes} probes succeeded")
        else:
            breaker.save(update_fields=["probe_successes", "probes_in_flight", "updated_at"])
    elif breaker.consecutive_failures:
        breaker.consecutive_failures = 0
        breaker.last_failing_organization = None
        breaker.several_organizations = False
        breaker.save(update_fields=["consecutive_failures", "last_failing_organization", "several_organizations",
                                    "updated_at"])


def _count_failure(breaker, organization):
    breaker.consecutive_failures += 1
    reason = f"{breaker.consecutive_failures} consecutive failures"
    if breaker.organization_id is None:
        if breaker.last_failing_organization_id not in (None, organization.id):
            breaker.several_organizations = True
        breaker.last_failing_organization_id = organization.id
        if breaker.several_organizations:
            reason += " from more than one organization"
        elif _is_owner(breaker.plugin, organization):
            reason += " of its owner's runs"
        else:
            # One organization's failures are for its own breaker to count.
            if breaker.state == State.HALF_OPEN:
                breaker.probes_in_flight = max(0, breaker.probes_in_flight - 1)
            breaker.save()
            return
    if breaker.state == State.HALF_OPEN:
        _move(breaker, State.OPEN, reason="a probe failed")
    elif breaker.state == State.CLOSED and breaker.consecutive_failures >= settings.BREAKER_FAILURE_THRESHOLD:
        _move(breaker, State.OPEN, reason=reason)
    else:
        breaker.save()


def is_open(plugin, organization):
    """Whether `organization`'s runs of the plugin are refused now."""
    return _in_scope(plugin, organization).filter(state=State.OPEN).exists()


def reset(breaker, *, actor_id=""):
    """Close one breaker by hand (admin actions)."""
    with transaction.atomic():
        # Only the breaker's row: locking the joined plugin would hold up
        # its uploads and activations for nothing.
        breaker = CircuitBreaker.objects.select_for_update(of=("self",)).select_related("plugin").get(pk=breaker.pk)
        if breaker.state != State.CLOSED or breaker.consecutive_failures:
            _move(breaker, State.CLOSED, actor_id=actor_id, reason="reset by an operator")


def open_breakers():
    return [
        {"pluginId": b.plugin.slug, "state": b.state, "scope": "all" if b.organization_id is None else "organization",
         "organizationId": b.organization.slug if b.organization_id is not None else None,
         "openedAt": b.opened_at, "consecutiveFailures": b.consecutive_failures}
        for b in CircuitBreaker.objects.exclude(state=State.CLOSED).select_related("plugin", "organization")
    ]
