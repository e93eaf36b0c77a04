"""How an execution looks to API clients (docs/api.md)."""

from rest_framework.response import Response

from core.envelope import envelope_response, error_body, error_status
from quotas.enforcement import usage_today

from ..callbacks import callback_summary
from ..models import Execution


def execution_response(execution, quota=None, *, as_record=False):
    """The sync/GET shape: 200 with the result, or the error envelope; with
    what became of its callback, when it has one.

    A run's answer (POST /execute) carries its error's HTTP status; the
    record of a run (`as_record`, GET /executions/<id>) is 200 whatever the
    run ended with, since the lookup itself succeeded: a failed run's status
    would read to monitoring and retrying clients as a failed lookup.
    """
    quota = quota or usage_today(execution.organization)
    body, status = execution_body(execution, quota)
    callback = callback_summary(execution)
    if callback is not None:
        body["callback"] = callback
    if status == 200:
        return Response(body, status=200, headers=quota.headers())
    return envelope_response(body, status=200 if as_record else status, headers=quota.headers())


def callback_body(execution):
    """What a callback POSTs: the execution's body as GET /executions/<id>
    answers it, without its `callback` member."""
    body, _ = execution_body(execution, usage_today(execution.organization))
    return body


def execution_body(execution, quota):
    """(body, HTTP status) of an execution, queued, running or ended."""
    if execution.status == Execution.Status.SUCCESS or execution.fallback:
        body = {
            "executionId": str(execution.id),
            "status": Execution.Status.SUCCESS if execution.fallback else execution.status,
            "success": True,
            "result": execution.result,
            "executionTime": execution.execution_time_ms,
            "memoryUsed": execution.peak_memory_bytes,
            "cacheHit": execution.cache_hit,
            "retryCount": execution.retry_count,
            "logs": execution.logs,
            "logsTruncated": execution.logs_truncated,
            "quota": quota.as_dict(),
        }
        if execution.fallback:
            # The run failed; this is the substitute the fallback chain found.
            body["fallback"] = execution.fallback
            body["stale"] = execution.fallback == "stale_cache"
            body["error"] = error_body(execution.error_type, execution.error_message)["error"]
        return body, 200
    if not execution.is_terminal:
        return {"executionId": str(execution.id), "status": execution.status, "quota": quota.as_dict()}, 200
    body = error_body(execution.error_type, execution.error_message, details=_error_details(execution),
                      execution_id=execution.id)
    body.update(
        status=execution.status,
        executionTime=execution.execution_time_ms,
        memoryUsed=execution.peak_memory_bytes,
        retryCount=execution.retry_count,
        logs=execution.logs,
        logsTruncated=execution.logs_truncated,
        quota=quota.as_dict(),
    )
    return body, error_status(execution.error_type)


def _error_details(execution):
    """A plugin's rejection of its params comes with the details it gave;
    any other run error with the plugin's traceback."""
    if execution.error_details is not None:
        return execution.error_details
    return {"traceback": execution.error_traceback} if execution.error_traceback else None
