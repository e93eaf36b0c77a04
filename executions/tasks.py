"""What a cluster's worker does with the run it claimed (executions.queue.worker)."""

import logging
import time

from django.db import DataError, IntegrityError, close_old_connections, transaction
from django.utils import timezone

from . import breaker, cache, lifecycle, recovery
from .queue.sealed_secrets import SecretsUnreadable, unseal_secrets
from .runner import plugins_own_memory_limit_mb, run_in_sandbox
from .submission import effective_timeout_ms

logger = logging.getLogger(__name__)


def run_claimed(execution):
    """Run an execution this worker has marked running, to its end."""
    try:
        secrets = unseal_secrets(execution.sealed_secrets or None)
    except SecretsUnreadable as error:
        lifecycle.finish_execution(
            execution, status="error", error_type="INTERNAL_ERROR", error_message=str(error), retry_count=execution.retry_count
        )
        return
    try:
        outcome, retries = run_with_retries(execution, secrets)
    except Exception:
        # Whatever went wrong on the host side, the record must not stay
        # "running": close it as a crash of the worker's side, retryable.
        logger.exception("execution %s failed on the host side", execution.pk)
        lifecycle.finish_execution(
            execution, status="error", error_type="WORKER_CRASHED", error_message="the worker failed while running this execution",
            retry_count=execution.retry_count,
        )
        return
    try:
        finish(execution, outcome, retries)
    except Exception as error:
        logger.exception("the outcome of execution %s could not be recorded", execution.pk)
        end_unrecorded(execution, error, retries)


def end_unrecorded(execution, error, retries):
    """The run ended but recording its outcome failed: end it as an error,
    without the plugin's output, rather than leave it running (holding its
    organization's slot and its sealed secrets) until its lease runs out.
    Should even this fail, the worker dies and its sentinel gives the run back.

    Data the database refused would be refused again: the plugin's error.
    Anything else (a lock, a lost connection) may pass on another try.
    """
    # A connection the failure left unusable is replaced.
    close_old_connections()
    if isinstance(error, (IntegrityError, DataError)):
        error_type, message = "PLUGIN_ERROR", "the action's output could not be stored: the database refused it"
    else:
        error_type, message = "INTERNAL_ERROR", "the run ended, but its outcome could not be recorded"
    lifecycle.finish_execution(
        execution, status="error", error_type=error_type, error_message=message, retry_count=retries
    )


def run_with_retries(execution, secrets):
    """Run until success, a failure another try won't fix, the retry budget
    is spent, or the plugin's breaker opens. Every attempt is recorded and
    counted by the breaker (for what it says about the plugin: plugin_verdict).

    The execution's timeout is the budget of the whole request: an attempt
    gets the action's own `timeoutMs` at most, and never more than what is
    left, so retries never make a caller wait past the timeout it asked for.
    """
    plugin = execution.plugin_version.plugin
    organization = execution.organization
    action = execution.plugin_version.manifest["actions"][execution.action]
    # The timeout is the budget of the whole execution, from its first start:
    # a run given back after its worker died has only what is left.
    spent = (timezone.now() - execution.started_at).total_seconds()
    deadline = time.monotonic() + execution.timeout_ms / 1000 - spent
    retries = execution.retry_count
    while True:
        remaining_ms = (deadline - time.monotonic()) * 1000
        attempt_ms = max(1, round(min(action.get("timeoutMs") or execution.timeout_ms, remaining_ms)))
        started_at = timezone.now()
        outcome = run_in_sandbox(execution, secrets, timeout_ms=attempt_ms, attempt=retries + 1)
        lifecycle.record_attempt(execution, retries + 1, outcome, started_at)
        breaker.record_outcome(plugin, organization, plugin_verdict(execution, action, outcome, attempt_ms))
        if outcome.status == "success" or not recovery.should_retry(outcome.error_type, action, retries):
            return outcome, retries
        pause = recovery.backoff_seconds(retries + 1)
        out_of_time = (deadline - time.monotonic() - pause) * 1000 < recovery.MIN_ATTEMPT_MS
        if out_of_time or breaker.is_open(plugin, organization):
            return outcome, retries
        retries += 1
        time.sleep(pause)
        lifecycle.renew_lease(execution, retries)


def plugin_verdict(execution, action, outcome, attempt_ms):
    """What one run says about the plugin, for its breaker: True (it worked),
    False (it failed), or None: the sandbox was not there to run it, or the
    failure is one the caller can cause for itself — params the plugin
    rejected, a timeout shorter than the action's own, a memory limit the
    caller's tier set below the plugin's own. Those must not let a tenant
    switch a shared plugin off."""
    if outcome.status == "success":
        return True
    if outcome.error_type == "SANDBOX_UNAVAILABLE" or outcome.error_type in recovery.CALLER_ERRORS:
        return None
    if outcome.error_type == "TIMEOUT" and attempt_ms < effective_timeout_ms(None, action):
        return None
    if outcome.error_type == "MEMORY_LIMIT_EXCEEDED":
        if execution.memory_limit_mb < plugins_own_memory_limit_mb(execution.plugin_version.manifest):
            return None
    return False


def finish(execution, outcome, retries):
    measures = dict(
        logs=outcome.logs,
        logs_truncated=outcome.logs_truncated,
        execution_time_ms=round(outcome.wall_ms),
        peak_memory_bytes=outcome.max_rss_bytes or None,
        cpu_time_ms=round(outcome.cpu_ms),
        retry_count=retries,
    )
    if outcome.status == "success":
        # One transaction: whoever is woken by the end can already hit the cache.
        result = outcome.result  # decoded once: it may be a megabyte of JSON
        with transaction.atomic():
            ended = lifecycle.finish_execution(execution, status="success", result=result, **measures)
            if ended and execution.cache_key:
                cache.store(execution.cache_key, execution, result)
        return
    action = execution.plugin_version.manifest["actions"][execution.action]
    # A caller's own mistake is answered as it is, not hidden behind a fallback.
    callers_own = outcome.error_type in recovery.CALLER_ERRORS
    substitute = None if callers_own else recovery.fallback(execution, action)
    lifecycle.finish_execution(
        execution,
        status=outcome.status,
        result=substitute[1] if substitute else None,
        fallback=substitute[0] if substitute else "",
        error_type=outcome.error_type,
        error_message=outcome.message,
        error_traceback=outcome.traceback,
        error_details=outcome.details,
        **measures,
    )
    # The owner hears of failures the fallback chain exists for: transient ones
    # that outlived their retries, and a plugin whose breaker is open for them.
    if callers_own:
        return
    plugin = execution.plugin_version.plugin
    if outcome.error_type in recovery.RETRYABLE_ERRORS or breaker.is_open(plugin, execution.organization):
        recovery.notify_owner(
            execution.organization,
            plugin.slug,
            f"{outcome.error_type} after {retries + 1} attempt(s): {outcome.message[:200]}",
        )
