"""django-q2 task entry points (run inside qcluster worker processes)."""

import logging

from . import lifecycle
from .runner import run_in_sandbox
from .transport import SecretsUnreadable, unseal_secrets

logger = logging.getLogger(__name__)


def run_execution(execution_id, sealed_secrets=None):
    execution = lifecycle.start_execution(execution_id)
    if execution is None:
        return
    try:
        secrets = unseal_secrets(sealed_secrets)
    except SecretsUnreadable as error:
        lifecycle.finish_execution(execution, status="error", error_type="INTERNAL_ERROR", error_message=str(error))
        return
    try:
        outcome = run_in_sandbox(execution, secrets)
    except Exception:
        # Whatever went wrong on the host side, the record must not stay
        # "running": close it as a crash of the worker's side, retryable.
        logger.exception("execution %s failed on the host side", execution_id)
        lifecycle.finish_execution(
            execution, status="error", error_type="WORKER_CRASHED", error_message="the worker failed while running this execution"
        )
        return
    lifecycle.finish_execution(
        execution,
        status=outcome.status,
        result=outcome.result,
        error_type=outcome.error_type,
        error_message=outcome.message,
        error_traceback=outcome.traceback,
        logs=outcome.logs,
        logs_truncated=outcome.logs_truncated,
        execution_time_ms=round(outcome.wall_ms),
        peak_memory_bytes=outcome.max_rss_bytes or None,
        cpu_time_ms=round(outcome.cpu_ms),
    )
