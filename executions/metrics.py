"""The Prometheus metrics an execution writes when it ends.

Executions end in qcluster worker processes and /metrics is answered by any
of several gunicorn workers, so every process writes its samples to its own
files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode,
set up in settings) and a scrape merges all of them: counters and histograms
are summed over every process that ever wrote them since the directory was
wiped, including workers that django-q2 or gunicorn have since replaced.
The state gauges (pool, queue, cache size, host) and the exposition are
`observability.prometheus`'s.
"""

from prometheus_client import Counter, Histogram

from .models import Execution

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MEMORY_BUCKETS = tuple(mib << 20 for mib in (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))

EXECUTIONS = Counter(
    "plugin_executions_total", "Executions that ended, by plugin, action and final status.",
    ["plugin_id", "action_name", "status"],
)
DURATION = Histogram(
    "plugin_execution_duration_seconds", "Wall-clock time of the sandboxed run.", ["plugin_id"],
    buckets=SECONDS_BUCKETS,
)
MEMORY = Histogram(
    "plugin_execution_memory_bytes", "Peak resident memory of the sandboxed run.", ["plugin_id"],
    buckets=MEMORY_BUCKETS,
)
ERRORS = Counter("plugin_errors_total", "Executions that ended in an error, by type.", ["plugin_id", "error_type"])
TIMEOUTS = Counter("plugin_timeouts_total", "Executions that ended in TIMEOUT.", ["plugin_id"])
RETRIES = Counter("plugin_retries_total", "Retry attempts made by executions that ended.", ["plugin_id"])
LOST_RUNS = Counter(
    "worker_lost_runs_total", "Runs whose worker died, by what became of them: requeued or crashed.", ["outcome"],
)
PROCESS_RESTARTS = Counter(
    "service_process_restarts_total",
    "Service processes that died and were started again: supervisord's program name (web, cluster-high, …) or worker, and who restarted it.",
    ["process", "supervisor"],
)
QUEUE_WAIT = Histogram(
    "worker_pool_queue_wait_seconds",
    "Time from admission to a worker taking the run (to its expiry, for a run that never left the queue).",
    ["priority"], buckets=SECONDS_BUCKETS,
)

CALLBACK_ATTEMPTS = Counter(
    "callback_attempts_total",
    "Attempts to send a run's callback, by the state each left it in: delivered, pending (to be tried again) or failed.",
    ["state"],
)

CACHE_HITS = Counter("cache_hits_total", "Executions of cacheable actions answered from the result cache.")
CACHE_MISSES = Counter("cache_misses_total", "Executions of cacheable actions that had to run.")
def observe_execution(execution):
    """Count one execution that has just ended (called by executions.lifecycle)."""
    plugin_id = execution.plugin_version.plugin.slug
    EXECUTIONS.labels(plugin_id, execution.action, execution.status).inc()
    # A cache hit took no run time: it would only drag the run latencies down.
    if execution.execution_time_ms is not None and not execution.cache_hit:
        DURATION.labels(plugin_id).observe(execution.execution_time_ms / 1000)
    if execution.peak_memory_bytes:
        MEMORY.labels(plugin_id).observe(execution.peak_memory_bytes)
    if execution.error_type:
        ERRORS.labels(plugin_id, execution.error_type).inc()
    if execution.status == Execution.Status.TIMEOUT:
        TIMEOUTS.labels(plugin_id).inc()
    if execution.retry_count:
        RETRIES.labels(plugin_id).inc(execution.retry_count)
    # A cacheable action's execution carries its cache key, hit or not.
    if execution.cache_key:
        (CACHE_HITS if execution.cache_hit else CACHE_MISSES).inc()
    # A run waited until a worker took it, or until it expired unstarted;
    # answers without a run (cache hits, fallbacks) never queued.
    left_queue_at = execution.started_at if execution.worker else execution.finished_at
    if left_queue_at is not None and (execution.worker or execution.started_at is None):
        QUEUE_WAIT.labels(execution.organization.tier.priority).observe(
            max(0.0, (left_queue_at - execution.queued_at).total_seconds())
        )
