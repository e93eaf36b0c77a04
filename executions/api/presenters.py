"""How an execution looks to API clients (docs/api.md)."""

from rest_framework.response import Response

from core.envelope import envelope_response, error_body
from quotas.enforcement import usage_today

from ..models import Execution


def execution_response(execution, quota=None, *, as_record=False):
    """The sync/GET shape: 200 with the result, or the error envelope.

    A run's answer (POST /execute) carries its error's HTTP status; the
    record of a run (`as_record`, GET /executions/<id>) is 200 whatever the
    run ended with, since the lookup itself succeeded: a failed run's status
    would read to monitoring and retrying clients as a failed lookup.
    """
    quota = quota or usage_today(execution.organization)
    headers = quota.headers()
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
        return Response(body, status=200, headers=headers)
    if not execution.is_terminal:
        body = {"executionId": str(execution.id), "status": execution.status, "quota": quota.as_dict()}
        return Response(body, status=200, headers=headers)
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
    return envelope_response(body, status=200 if as_record else None, headers=headers)


def _error_details(execution):
    """A plugin's rejection of its params comes with the details it gave;
    any other run error with the plugin's traceback."""
    if execution.error_details is not None:
        return execution.error_details
    return {"traceback": execution.error_traceback} if execution.error_traceback else None
