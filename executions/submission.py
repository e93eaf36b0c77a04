"""From a validated request to a queued execution, and back to its outcome."""

import contextlib
import datetime as dt
import hashlib
import hmac
import time

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from referencing.exceptions import Unresolvable

from audit.events import record_event
from audit.models import AuditEvent
from core import sql
from core.draining import is_draining
from core.errors import EngineError, shortened
from core.load_shedding import waiting
from plugins.models import Plugin, PluginVersion
from plugins.params_schema import UncheckableSchema, params_validator
from quotas.enforcement import QuotaRefused, admit, consume_daily, usage_today

from . import breaker, cache, lifecycle, recovery
from .cache import canonical_json
from .models import Execution
from .queue.sealed_secrets import seal_secrets
from .queue.wakeups import Waiter, wake
from .runner import host_layers, memory_limit_mb, missing_host_layers, secrets_for_run

# How long a queued run may wait to start, beyond its own timeout, before it
# ends as TIMEOUT (its start deadline).
QUEUE_PATIENCE_SECONDS = 10
QUEUE_FULL_RETRY_AFTER_SECONDS = 2
# Long enough for a restarted web process, or another node, to take over.
SHUTTING_DOWN_RETRY_AFTER_SECONDS = 5


VERSION_COLUMNS = sql.Columns(PluginVersion, "v", exclude=("archive",))
PLUGIN_COLUMNS = sql.Columns(Plugin, "p")


def resolve_action(organization, plugin_id, action_name, version=None):
    """The plugin version and action a caller may run, or the right EngineError.
    One query when the call is good (every request asks: hand-written SQL,
    core.sql); the error's reason is looked up only when it is not."""
    which = "v.version = %s" if version else "v.is_active"
    row = sql.fetch_one(
        f"SELECT {VERSION_COLUMNS.sql}, {PLUGIN_COLUMNS.sql} FROM plugins_pluginversion v"
        " JOIN plugins_plugin p ON p.id = v.plugin_id"
        f" WHERE p.slug = %s AND p.enabled AND (p.owner_id IS NULL OR p.owner_id = %s) AND {which}",
        [plugin_id, organization.pk, *([version] if version else [])],
    )
    if row is None:
        raise unresolved(organization, plugin_id, version)
    plugin_version = VERSION_COLUMNS.instance(row)
    plugin_version.plugin = PLUGIN_COLUMNS.instance(row, VERSION_COLUMNS.width)
    action = plugin_version.action(action_name)
    if action is None:
        raise EngineError(
            "ACTION_NOT_FOUND",
            f"plugin {plugin_id!r} has no action {action_name!r}",
            details={"actions": sorted(plugin_version.manifest.get("actions", {}))},
        )
    return plugin_version, action


def unresolved(organization, plugin_id, version):
    """Why no runnable version of `plugin_id` was found for this caller."""
    plugin = Plugin.objects.visible_to(organization).filter(slug=plugin_id).first()
    if plugin is None:
        return EngineError("PLUGIN_NOT_FOUND", f"no plugin {plugin_id!r}")
    if not plugin.enabled:
        return EngineError("PLUGIN_DISABLED", f"plugin {plugin_id!r} is disabled")
    what = f"version {version!r}" if version else "an active version"
    return EngineError("PLUGIN_NOT_FOUND", f"plugin {plugin_id!r} has no {what}")


def validate_params(action, params):
    schema = action.get("params") or {"type": "object"}
    try:
        errors = sorted(params_validator(schema).iter_errors(params), key=lambda e: list(e.absolute_path))
    except (UncheckableSchema, Unresolvable) as exc:
        # Upload refuses such schemas (a bad $ref as far as the examples reach
        # it): a version uploaded before that, or a $ref no example reached.
        raise EngineError(
            "VALIDATION_ERROR",
            f"this action's params schema cannot be checked here ({exc}); the plugin needs a new version",
            details=[{"field": "params", "message": str(exc)}],
        ) from None
    if errors:
        details = [
            {"field": "params" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
             "message": shortened(e.message)}
            for e in errors[:20]
        ]
        raise EngineError("VALIDATION_ERROR", f"params do not match the action's schema: {details[0]['message']}",
                       details=details)


def effective_timeout_ms(requested_ms, action):
    """The caller's timeout, else the action's, else the default; never above the maximum."""
    timeout = requested_ms or action.get("timeoutMs") or settings.DEFAULT_TIMEOUT_MS
    return max(1, min(int(timeout), settings.MAX_TIMEOUT_MS))


def request_fingerprint(body):
    """What makes two requests with one Idempotency-Key the same request.

    Keyed, because the body may hold secrets and the fingerprint is stored."""
    return hmac.new(settings.SECRET_KEY.encode(), canonical_json(body).encode(), hashlib.sha256).hexdigest()


def replay(organization, idempotency_key, fingerprint):
    """The execution an earlier request with this key created, or None."""
    if not idempotency_key:
        return None
    existing = Execution.objects.filter(organization=organization, idempotency_key=idempotency_key).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise EngineError(
            "IDEMPOTENCY_CONFLICT",
            "this Idempotency-Key was used with a different request body",
            execution_id=existing.id,
        )
    return existing


def submit_execution(*, organization, idempotency_key="", fingerprint="", **request):
    """Answer from the cache, or admit and queue one run; returns (execution, quota snapshot).

    In order: an earlier request with the same Idempotency-Key, the sandbox
    being usable, the result cache, the plugin's circuit breaker (with its
    fallbacks), the queue's room, then the quotas.
    """
    try:
        existing = replay(organization, idempotency_key, fingerprint)
        if existing is None:
            return _submit(organization=organization, idempotency_key=idempotency_key, fingerprint=fingerprint, **request)
    except IdempotentReplay as replayed:
        existing = replayed.execution
    return existing, usage_today(organization)


def _submit(*, organization, plugin_version, action_name, params, secrets, timeout_ms, actor_id, idempotency_key, fingerprint,
            callback_url=""):
    if is_draining():
        raise EngineError("SHUTTING_DOWN", "this server is shutting down; try again shortly",
                          retry_after=SHUTTING_DOWN_RETRY_AFTER_SECONDS)
    missing = missing_host_layers()
    if missing:
        reasons = "; ".join(f"{name} ({host_layers().get(name, (False, 'unknown layer'))[1]})" for name in missing)
        raise EngineError("SANDBOX_UNAVAILABLE", f"plugins are not run on this host: required sandbox layers are missing: {reasons}",
                       details={"missingLayers": missing})
    action = plugin_version.action(action_name)
    fields = dict(
        organization=organization,
        actor_id=actor_id or "",
        plugin_version=plugin_version,
        action=action_name,
        params=params,
        timeout_ms=timeout_ms,
        memory_limit_mb=memory_limit_mb(organization, plugin_version.manifest),
        long_running=is_long_running(action),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint if idempotency_key else "",
        callback_url=callback_url,
    )
    if cache.is_cacheable(action):
        _, granted = secrets_for_run(organization, plugin_version, secrets)
        fields["cache_key"] = cache.cache_key(organization, plugin_version, action_name, params, granted)
        cached = cache.lookup(fields["cache_key"])
        if cached is not None:
            return answer_without_run(fields, status=Execution.Status.SUCCESS, result=cached, cache_hit=True,
                                      execution_time_ms=0)
    try:
        breaker.admit(plugin_version.plugin, organization)
    except breaker.CircuitOpen as refusal:
        return answer_circuit_open(fields, action, refusal)
    priority = organization.tier.priority
    with quota_refusals(fields):
        with transaction.atomic():
            check_queue_room(priority, fields["long_running"])
            quota = admit(organization, count_in_flight)
            execution = enqueue(fields, seal_secrets(secrets))
    return execution, quota


def is_long_running(action):
    return (action.get("timeoutMs") or 0) > settings.LONG_RUN_MS


def check_queue_room(priority, long_running=False):
    """QUEUE_FULL when the priority's queue holds its QUEUE_LIMITS runs of the
    same length (long runs have a queue of their own, so that they never
    fill the one trivial calls need). Called in the admitting transaction,
    after the priority's tiers are locked where rows can be (PostgreSQL;
    SQLite's IMMEDIATE transactions admit one run at a time already), so
    that the limit is exact however many requests race for the last place."""
    if connection.features.has_select_for_update:
        sql.fetch_all("SELECT 1 FROM quotas_tier WHERE priority = %s FOR NO KEY UPDATE", [priority])
    limit = settings.QUEUE_LIMITS[priority]
    # Every admission counts: hand-written SQL (core.sql), on the queue's index.
    (queued,) = sql.fetch_one(
        "SELECT COUNT(*) FROM executions_execution WHERE status = 'queued' AND priority = %s AND long_running = %s",
        [priority, long_running],
    )
    if queued >= limit:
        kind = "long runs" if long_running else "runs"
        raise EngineError(
            "QUEUE_FULL", f"the {priority}-priority queue holds {limit} {kind} already; try again shortly",
            retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
        )


def count_in_flight(organization):
    # Every admission counts, on the execution_in_flight index, whose
    # condition the query must spell as it is (a bound parameter would hide
    # that from SQLite's planner): hand-written SQL (core.sql).
    (count,) = sql.fetch_one(
        "SELECT COUNT(*) FROM executions_execution WHERE organization_id = %s AND status IN ('queued', 'running')",
        [organization.pk],
    )
    return count


def answer_without_run(fields, **outcome):
    """A cache hit or a fallback: counted against the daily quota (it answered
    a request) but holding no concurrent slot (nothing runs)."""
    with quota_refusals(fields):
        with transaction.atomic():
            quota = consume_daily(fields["organization"])
            execution = lifecycle.record_answered_execution(quota, **fields, **outcome)
    return execution, quota


def answer_circuit_open(fields, action, refusal):
    """The breaker is open: a recent cached result, else the action's
    default, else CIRCUIT_OPEN — and the organization's owner is told."""
    execution = Execution(**fields)
    substitute = recovery.fallback(execution, action)
    recovery.notify_owner(fields["organization"], fields["plugin_version"].plugin.slug, "its circuit breaker is open")
    if substitute is None:
        raise EngineError("CIRCUIT_OPEN", str(refusal), retry_after=refusal.retry_after, details={"scope": refusal.scope})
    kind, result = substitute
    return answer_without_run(
        fields, status=Execution.Status.ERROR, error_type="CIRCUIT_OPEN", error_message=str(refusal),
        fallback=kind, result=result,
    )


@contextlib.contextmanager
def quota_refusals(fields):
    """Turn a quota refusal into its API error, with its audit event; a lost
    Idempotency-Key race into the winner's execution."""
    organization = fields["organization"]
    try:
        yield
    except QuotaRefused as refusal:
        record_event(
            AuditEvent.Type.QUOTA_EXCEEDED,
            organization=organization,
            actor_id=fields["actor_id"],
            target_id=fields["plugin_version"].plugin.slug,
            metadata={"errorType": refusal.error_type, "quotaUsed": refusal.snapshot.used,
                      "quotaLimit": refusal.snapshot.limit, "actionName": fields["action"]},
        )
        raise EngineError(
            refusal.error_type, refusal.message, retry_after=refusal.retry_after, quota=refusal.snapshot
        ) from None
    except IntegrityError:
        if not fields["idempotency_key"]:
            raise
        raise IdempotentReplay(replay(organization, fields["idempotency_key"], fields["request_fingerprint"])) from None


class IdempotentReplay(Exception):
    """Two requests with one Idempotency-Key raced and the other one won."""

    def __init__(self, execution):
        super().__init__(str(execution.id))
        self.execution = execution


def enqueue(fields, sealed_secrets):
    """Queue one run, in the caller's transaction: the queued execution is the
    queue's entry (executions.queue.claims), so the run, its quota and its
    place in the queue commit together or not at all. Its priority's workers
    on this node are woken when it commits."""
    now = timezone.now()
    priority = fields["organization"].tier.priority
    execution = lifecycle.insert_execution(Execution(
        **fields,
        priority=priority,
        start_deadline=now + dt.timedelta(milliseconds=fields["timeout_ms"], seconds=QUEUE_PATIENCE_SECONDS),
        sealed_secrets=sealed_secrets or "",
    ))
    transaction.on_commit(lambda: wake(lifecycle.queue_topic(priority)))
    return execution


PROGRESS_COLUMNS = sql.Columns(Execution, "e", only=("id", "status", "start_deadline", "lease_expires_at"))


def wait_for_outcome(execution, deadline=None):
    """Block until the run ends and return it (or, past `deadline`, a
    time.monotonic(), return None). A run still queued past its
    start deadline is expired; a running one is waited for while its
    worker's lease holds (retries renew it), and given back when the lease
    runs out. The worker wakes us when it records the end; the database is
    looked at again at least every EXECUTION_IDLE_POLL_SECONDS in case a
    wake-up is lost. Each look reads three columns; the whole execution is
    loaded once, when it has ended. Every synchronous call reads these:
    hand-written SQL (core.sql)."""
    with Waiter(lifecycle.execution_topic(execution.pk)) as waiter:
        while True:
            progress = PROGRESS_COLUMNS.get(execution.pk)
            if progress.status in Execution.TERMINAL:
                return ended(execution)
            now = timezone.now()
            if progress.status == Execution.Status.QUEUED and progress.start_deadline < now:
                lifecycle.expire_unstarted(Execution.objects.with_plugin().get(pk=execution.pk))
                continue
            if progress.lease_expires_at and progress.lease_expires_at < now:
                lifecycle.reclaim_expired_leases(execution.organization)
                continue
            wait = settings.EXECUTION_IDLE_POLL_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return None
            with waiting():
                sql.release_connection()
                waiter.wait(wait)


def ended(execution):
    """The ended execution, read again without the joins: its plugin version
    and organization are the ones the caller already holds."""
    record = lifecycle.EXECUTION_COLUMNS.get(execution.pk)
    record.plugin_version = execution.plugin_version
    record.organization = execution.organization
    return record
