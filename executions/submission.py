"""From a validated request to a queued execution, and back to its outcome."""

import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task
from jsonschema import Draft202012Validator

from plugins.models import Plugin
from quotas.enforcement import QuotaRefused, admit

from . import lifecycle
from .errors import ApiError
from .events import record_event
from .models import Execution, ExecutionEvent
from .runner import host_layers, memory_limit_mb, missing_host_layers
from .transport import seal_secrets

# How long a synchronous caller waits for a run to leave the queue, beyond
# the run's own timeout, before the run is given up as TIMEOUT.
QUEUE_PATIENCE_SECONDS = 10
# How long past its timeout a started run may take to be reported (kill,
# reap, record) before the caller is told to poll instead.
REPORT_PATIENCE_SECONDS = 30


def resolve_action(organization, plugin_id, action_name, version=None):
    """The plugin version and action a caller may run, or the right ApiError."""
    plugin = Plugin.objects.visible_to(organization).filter(slug=plugin_id).first()
    if plugin is None:
        raise ApiError("PLUGIN_NOT_FOUND", f"no plugin {plugin_id!r}")
    if not plugin.enabled:
        raise ApiError("PLUGIN_DISABLED", f"plugin {plugin_id!r} is disabled")
    versions = plugin.versions.all()
    plugin_version = versions.filter(version=version).first() if version else versions.filter(is_active=True).first()
    if plugin_version is None:
        what = f"version {version!r}" if version else "an active version"
        raise ApiError("PLUGIN_NOT_FOUND", f"plugin {plugin_id!r} has no {what}")
    action = plugin_version.action(action_name)
    if action is None:
        raise ApiError(
            "ACTION_NOT_FOUND",
            f"plugin {plugin_id!r} has no action {action_name!r}",
            details={"actions": sorted(plugin_version.manifest.get("actions", {}))},
        )
    return plugin_version, action


def validate_params(action, params):
    schema = action.get("params") or {"type": "object"}
    errors = sorted(Draft202012Validator(schema).iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        details = [
            {"field": "params" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
             "message": e.message}
            for e in errors[:20]
        ]
        raise ApiError("VALIDATION_ERROR", f"params do not match the action's schema: {details[0]['message']}",
                       details=details)


def effective_timeout_ms(requested_ms, action):
    """The caller's timeout, else the action's, else the default; never above the maximum."""
    timeout = requested_ms or action.get("timeoutMs") or settings.DEFAULT_TIMEOUT_MS
    return max(1, min(int(timeout), settings.MAX_TIMEOUT_MS))


def submit_execution(*, organization, plugin_version, action_name, params, secrets, timeout_ms, actor_id):
    """Admit and queue one run; returns (execution, quota snapshot)."""
    missing = missing_host_layers()
    if missing:
        reasons = "; ".join(f"{name} ({host_layers().get(name, (False, 'unknown layer'))[1]})" for name in missing)
        raise ApiError("SANDBOX_UNAVAILABLE", f"plugins are not run on this host: required sandbox layers are missing: {reasons}",
                       details={"missingLayers": missing})
    if Execution.objects.filter(status=Execution.Status.QUEUED).count() >= settings.QUEUE_LIMIT:
        raise ApiError("QUEUE_FULL", f"the queue holds {settings.QUEUE_LIMIT} runs already; try again shortly",
                       headers={"Retry-After": "2"})
    lifecycle.reclaim_expired_leases(organization)
    sealed = seal_secrets(secrets)
    try:
        with transaction.atomic():
            quota = admit(organization)
            execution = Execution.objects.create(
                organization=organization,
                actor_id=actor_id or "",
                plugin_version=plugin_version,
                action=action_name,
                params=params,
                timeout_ms=timeout_ms,
                memory_limit_mb=memory_limit_mb(organization, plugin_version.manifest),
            )
            transaction.on_commit(lambda: enqueue(execution, sealed))
    except QuotaRefused as refusal:
        record_event(
            ExecutionEvent.Type.QUOTA_EXCEEDED,
            organization=organization,
            actor_id=actor_id,
            target_id=plugin_version.plugin.slug,
            metadata={"errorType": refusal.error_type, "quotaUsed": refusal.snapshot.used,
                      "quotaLimit": refusal.snapshot.limit, "actionName": action_name},
        )
        headers = {"Retry-After": str(refusal.retry_after), **refusal.snapshot.headers()}
        raise ApiError(refusal.error_type, refusal.message, headers=headers) from None
    return execution, quota


def enqueue(execution, sealed_secrets):
    try:
        async_task(
            "executions.tasks.run_execution",
            str(execution.id),
            sealed_secrets,
            task_name=f"execution-{execution.id}",
            timeout=settings.Q_CLUSTER_TIMEOUT,
            cluster=settings.PRIORITY_CLUSTERS[execution.organization.tier.priority],
        )
    except Exception as error:
        lifecycle.finish_execution(
            execution, status=Execution.Status.ERROR, error_type="WORKER_CRASHED",
            error_message=f"the run could not be queued: {type(error).__name__}",
        )


def wait_for_outcome(execution):
    """Block until the run ends and return it; a run still queued after the
    caller's patience is expired, and one that outlives its report deadline
    is returned unfinished."""
    submitted = time.monotonic()
    give_up_queued_at = submitted + execution.timeout_ms / 1000 + QUEUE_PATIENCE_SECONDS
    give_up_at = give_up_queued_at + REPORT_PATIENCE_SECONDS
    interval = 0.002
    while True:
        current = Execution.objects.select_related("plugin_version__plugin", "organization__tier").get(pk=execution.pk)
        if current.is_terminal or time.monotonic() > give_up_at:
            return current
        now = time.monotonic()
        if current.status == Execution.Status.QUEUED and now > give_up_queued_at:
            lifecycle.expire_queued_execution(current, now - submitted)
            continue
        if current.lease_expires_at and current.lease_expires_at < timezone.now():
            lifecycle.reclaim_expired_leases(current.organization)
            continue
        time.sleep(interval)
        interval = min(interval * 1.5, 0.01)
