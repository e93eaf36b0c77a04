"""The errors the engine reports to its callers, named by type.

The service layer (submission, plugin services, secrets, audit queries)
raises `EngineError` with one of these types; it knows nothing of HTTP.
`core.envelope` turns it into the API's error envelope, status and headers.
Whether an error is retryable is part of the type: the same request may
succeed later (a quota resets, a queue drains), so the runner's retries and
the API's `retryable` flag read the same table.
"""

# type -> retryable
ERROR_TYPES = {
    "VALIDATION_ERROR": False,
    "AUTHENTICATION_FAILED": False,
    "PERMISSION_DENIED": False,
    "NOT_FOUND": False,
    "PLUGIN_NOT_FOUND": False,
    "ACTION_NOT_FOUND": False,
    "EXECUTION_NOT_FOUND": False,
    "METHOD_NOT_ALLOWED": False,
    "PLUGIN_DISABLED": False,
    "IDEMPOTENCY_CONFLICT": False,
    "QUOTA_EXCEEDED": True,
    "CONCURRENCY_LIMIT": True,
    "RATE_LIMITED": True,
    "QUEUE_FULL": True,
    "SHUTTING_DOWN": True,
    "CIRCUIT_OPEN": True,
    "SANDBOX_UNAVAILABLE": False,
    "TIMEOUT": True,
    "NETWORK_ERROR": True,
    "WORKER_CRASHED": True,
    "PLUGIN_ERROR": False,
    "MEMORY_LIMIT_EXCEEDED": False,
    "OUTPUT_LIMIT_EXCEEDED": False,
    "SANDBOX_VIOLATION": False,
    "INTERNAL_ERROR": True,
}


def is_retryable(error_type):
    return ERROR_TYPES.get(error_type, False)


# A message about a caller's input may quote it (jsonschema's messages hold
# the value): quoted once per error, a megabyte param would come back many
# times over.
ECHO_LIMIT = 300


def shortened(message, limit=ECHO_LIMIT):
    """The message, cut to `limit` characters with an ellipsis."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


class EngineError(Exception):
    """A refusal or failure the caller is told about.

    `retry_after` (seconds) says when the same request may succeed;
    `quota` (a `quotas.enforcement.QuotaSnapshot`) is the caller's daily quota
    when the refusal concerns it; `execution_id` names an execution the error
    belongs to.
    """

    def __init__(self, error_type, message, *, details=None, retry_after=None, quota=None, execution_id=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.quota = quota
        self.execution_id = execution_id

    @property
    def retryable(self):
        return is_retryable(self.error_type)
