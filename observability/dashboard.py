"""The admin dashboard's figures over the last hour or day, from the
execution records themselves (no separate time series to keep).

Each window is cut in buckets: one minute over an hour, 15 minutes over a
day. A run counts in the bucket where it ended; the queue depth is sampled
at each bucket's end from when runs entered and left the queue. One query
reads the window's runs, which is fine for an operator's page up to some
100,000 runs a day; beyond that Prometheus and Grafana are the tools.

The worker pool's size by priority is replayed from the sentinels'
`worker_pool_scaled` events (one query for the window's, one per priority
that had none in it), and the latest of them are listed. A table gives
each plugin's figures over the window (from the same runs) and the state of
its circuit breakers now.
"""

import datetime as dt
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils import timezone

from executions import breaker
from executions.models import Execution

from . import stats
from .charts import Series, line_chart


@dataclass(frozen=True)
class Window:
    label: str
    span: dt.timedelta
    bucket: dt.timedelta


WINDOWS = {
    "hour": Window("Last hour", dt.timedelta(hours=1), dt.timedelta(minutes=1)),
    "day": Window("Last day", dt.timedelta(days=1), dt.timedelta(minutes=15)),
}
STATUS_COLORS = {
    Execution.Status.SUCCESS: "#2e7d32",
    Execution.Status.ERROR: "#c62828",
    Execution.Status.TIMEOUT: "#ef6c00",
}
PALETTE = ["#c62828", "#ef6c00", "#6a1b9a", "#1565c0", "#00838f", "#827717", "#4e342e"]
# More error types than this in one window are shown as "other".
MAX_ERROR_SERIES = len(PALETTE) - 1
PRIORITY_COLORS = {"high": "#6a1b9a", "medium": "#1565c0", "low": "#00838f"}
# The latest scaling decisions listed under the charts.
RECENT_SCALING_ROWS = 10
# Seconds between reloads the page offers (none by default).
REFRESH_CHOICES = (30, 60, 300)


def window_rows(start):
    """Runs that ended in the window or have not ended yet."""
    return Execution.objects.filter(Q(finished_at__gte=start) | Q(finished_at__isnull=True)).values_list(
        "queued_at", "started_at", "finished_at", "status", "error_type", "execution_time_ms", "cache_hit",
        "cache_key", "plugin_version__plugin__slug",
    )


def pool_size_series(start, bucket_ends, pools):
    """{priority: its pool's size at each of `bucket_ends`}, replayed from the
    `worker_pool_scaled` events: at a bucket's end, the `to` of the last
    decision at or before it; before the window's first decision, that
    decision's `from`. A priority with no decision in the window keeps the
    size of its last decision before it, else its live clusters' size now
    (`pools`, from stats.pool_by_priority), else its configured minimum."""
    decisions = defaultdict(list)  # priority: [(timestamp, from, to)], oldest first
    rows = (
        stats.scaling_events().filter(timestamp__gte=start).order_by("timestamp", "pk")
        .values_list("timestamp", "target_id", "metadata")
    )
    for row in rows:
        decision = stats.scaling_decision(*row)
        if decision["priority"] in pools and _is_count(decision["to"]):
            before = decision["from"] if _is_count(decision["from"]) else decision["to"]
            decisions[decision["priority"]].append((decision["timestamp"], before, decision["to"]))

    series = {}
    for priority, pool in pools.items():
        steps = decisions[priority]
        if steps:
            initial = steps[0][1]
        else:
            initial = pool["size"] if pool["clusters"] else pool["minimum"]
            last = (
                stats.scaling_events().filter(target_id=priority, timestamp__lt=start)
                .values_list("metadata", flat=True).first()
            )
            last_size = stats.scaling_decision(None, priority, last)["to"]
            if _is_count(last_size):
                initial = last_size
        at = [timestamp for timestamp, _, _ in steps]
        series[priority] = [
            steps[index - 1][2] if (index := bisect_right(at, bucket_end)) else initial for bucket_end in bucket_ends
        ]
    return series


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def build(window_name, now=None):
    """Template context for the dashboard: the window, summary figures and the charts."""
    window = WINDOWS[window_name]
    now = now or timezone.now()
    # Buckets end on whole multiples of the bucket size, so labels are round times.
    bucket_seconds = window.bucket.total_seconds()
    end = dt.datetime.fromtimestamp((now.timestamp() // bucket_seconds + 1) * bucket_seconds, tz=dt.timezone.utc)
    count = int(window.span / window.bucket)
    start = end - window.span
    times = [start + window.bucket * i for i in range(count)]

    finished = [0] * count
    by_status = defaultdict(lambda: [0] * count)
    by_error = defaultdict(lambda: [0] * count)
    hits = [0] * count
    cacheable = [0] * count
    latencies = [[] for _ in range(count)]
    plugins = defaultdict(PluginFigures)
    entered, left = [], []
    rows = window_rows(start)
    for queued_at, started_at, finished_at, status, error_type, time_ms, cache_hit, cache_key, slug in rows:
        entered.append(queued_at)
        if started_at or finished_at:
            left.append(started_at or finished_at)
        if finished_at is None or finished_at < start:
            continue
        index = min(count - 1, int((finished_at - start) / window.bucket))
        finished[index] += 1
        by_status[status][index] += 1
        hits[index] += cache_hit
        cacheable[index] += bool(cache_key)
        if error_type:
            by_error[error_type][index] += 1
        if time_ms is not None and not cache_hit:  # a cache hit did not run
            latencies[index].append(time_ms)
        plugins[slug].count(error_type, time_ms, cache_hit, cache_key)

    minutes = bucket_seconds / 60
    entered.sort()
    left.sort()

    def share(counts, of=finished):
        return [round(100 * n / total, 1) if total else None for n, total in zip(counts, of)]

    def queue_depth(at):
        return bisect_right(entered, at) - bisect_right(left, at)

    all_latencies = [ms for bucket in latencies for ms in bucket]
    total = sum(finished)
    clusters = stats.live_clusters()
    pools = stats.pool_by_priority(clusters)
    pool_sizes = pool_size_series(start, [t + window.bucket for t in times], pools)
    charts = [
        line_chart(
            "Executions per minute by status",
            times,
            [Series(status, [round(n / minutes, 2) for n in by_status[status]], color)
             for status, color in STATUS_COLORS.items()],
            "/min",
        ),
        line_chart(
            "Error rate by type (% of runs)",
            times,
            [Series(name, share(counts), color) for (name, counts), color in zip(error_series(by_error), PALETTE)],
            "%",
        ),
        # p50 and p95 apart, each on its own scale: on one, a few slow runs
        # flatten the median against the axis.
        line_chart("Latency p50 (ms)", times, [Series("p50", [stats.percentile(b, 50) for b in latencies], "#1565c0")],
                   " ms"),
        line_chart("Latency p95 (ms)", times, [Series("p95", [stats.percentile(b, 95) for b in latencies], "#6a1b9a")],
                   " ms"),
        line_chart(
            "Cache hit rate (% of cacheable runs)", times, [Series("cache hits", share(hits, cacheable), "#00838f")], "%"
        ),
        line_chart(
            "Queue depth (runs waiting)",
            times,
            [Series("queued", [queue_depth(min(t + window.bucket, now)) for t in times], "#5d4037")],
        ),
        line_chart(
            "Worker pool size by priority",
            times,
            [Series(priority, sizes, PRIORITY_COLORS.get(priority, PALETTE[-1]))
             for priority, sizes in pool_sizes.items()],
            " workers",
        ),
    ]
    errors = sum(sum(counts) for counts in by_error.values())
    summary = {
        "executions": total,
        "errors": errors,
        "errorRate": round(100 * errors / total, 1) if total else None,
        "p50": stats.percentile(all_latencies, 50),
        "p95": stats.percentile(all_latencies, 95),
        "cacheHitRate": round(100 * sum(hits) / sum(cacheable), 1) if sum(cacheable) else None,
        "queued": stats.queue_size(),
        "workers": stats.worker_pool(clusters),
    }
    return {
        "window": window, "window_name": window_name, "windows": WINDOWS, "summary": summary, "charts": charts,
        "plugins": plugin_rows(plugins), "pools": pools, "scaling": stats.recent_scaling(RECENT_SCALING_ROWS),
    }


@dataclass
class PluginFigures:
    """One plugin's runs that ended in the window."""

    runs: int = 0
    errors: int = 0
    hits: int = 0
    cacheable: int = 0
    latencies: list = field(default_factory=list)  # ms, of the runs that ran (not cache hits)

    def count(self, error_type, time_ms, cache_hit, cache_key):
        self.runs += 1
        self.errors += bool(error_type)
        self.hits += cache_hit
        self.cacheable += bool(cache_key)
        if time_ms is not None and not cache_hit:
            self.latencies.append(time_ms)


def plugin_rows(figures):
    """The per-plugin table: each plugin that ran in the window or whose
    circuit breaker is not closed now, the busiest first."""
    breakers = defaultdict(list)
    for state in breaker.open_breakers():
        breakers[state["pluginId"]].append(state)
    rows = []
    for slug in set(figures) | set(breakers):
        plugin = figures.get(slug, PluginFigures())
        rows.append({
            "plugin": slug,
            "runs": plugin.runs,
            "errorRate": round(100 * plugin.errors / plugin.runs, 1) if plugin.runs else None,
            "p95": stats.percentile(plugin.latencies, 95),
            "cacheHitRate": round(100 * plugin.hits / plugin.cacheable, 1) if plugin.cacheable else None,
            "breakers": sorted(breakers[slug], key=lambda state: state["organizationId"] or ""),
        })
    return sorted(rows, key=lambda row: (-row["runs"], row["plugin"]))


def error_series(by_error):
    """(error type, counts per bucket), the most frequent types first, the
    rest summed as "other" so the chart stays readable."""
    ranked = [name for name, _ in Counter({name: sum(c) for name, c in by_error.items()}).most_common()]
    series = [(name, by_error[name]) for name in ranked[:MAX_ERROR_SERIES]]
    rest = ranked[MAX_ERROR_SERIES:]
    if rest:
        series.append(("other", [sum(by_error[name][i] for name in rest) for i in range(len(series[0][1]))]))
    return series
