"""The OpenAPI description of /health, /stats and /metrics, next to their views."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

HEALTH_EXAMPLE = {
    "status": "healthy",
    "checks": {
        "database": {"status": "healthy", "latencyMs": 0.4},
        "cache": {"status": "healthy", "backend": "FileBasedCache"},
        "broker": {"status": "healthy", "queued": 0, "limit": 100},
        "cluster": {"status": "healthy", "clusters": 3, "workers": 10, "states": ["Idle"]},
        "sandbox": {"status": "healthy", "layers": {"seccomp": "active", "landlock": "active"}, "required": ["seccomp", "landlock"]},
        "memory": {"status": "healthy", "usedPercent": 31.2},
        "cpu": {"status": "healthy", "usedPercent": 12.5},
    },
}


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "degraded", "unhealthy"])
    checks = serializers.DictField(
        child=serializers.JSONField(), help_text="database, cache, broker, cluster, sandbox, memory, cpu"
    )


class WorkerPoolSerializer(serializers.Serializer):
    clusters = serializers.IntegerField(help_text="qcluster processes with a live heartbeat")
    total = serializers.IntegerField()
    active = serializers.IntegerField(help_text="runs in progress")
    idle = serializers.IntegerField()
    utilization = serializers.FloatField(help_text="busy workers / total, 0..1")


class QueueWaitSerializer(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True, help_text="seconds")
    p95 = serializers.FloatField(allow_null=True, help_text="seconds")
    samples = serializers.IntegerField()
    windowSeconds = serializers.IntegerField()


class QueueSerializer(serializers.Serializer):
    size = serializers.IntegerField(help_text="runs admitted and not started")
    limit = serializers.IntegerField(help_text="the priorities' queue limits added up (QUEUE_LIMIT_HIGH/_MEDIUM/_LOW): a priority's queue at its own limit answers QUEUE_FULL")
    waitSeconds = QueueWaitSerializer()


class CacheStatsSerializer(serializers.Serializer):
    keys = serializers.IntegerField(help_text="fresh entries")
    entries = serializers.IntegerField(help_text="fresh and stale entries")
    sizeBytes = serializers.IntegerField()
    hits = serializers.IntegerField(help_text="cacheable executions answered from the cache, last 24 h")
    misses = serializers.IntegerField(help_text="cacheable executions that ran, last 24 h")
    hitRate = serializers.FloatField(allow_null=True)
    maxEntries = serializers.IntegerField()
    ttlMs = serializers.IntegerField()
    enabled = serializers.BooleanField()


class BreakerSerializer(serializers.Serializer):
    pluginId = serializers.CharField()
    state = serializers.ChoiceField(choices=["open", "half_open"])
    scope = serializers.ChoiceField(choices=["all", "organization"], help_text="open for every organization, or for one")
    organizationId = serializers.CharField(allow_null=True, help_text="the organization, when scope is organization")
    openedAt = serializers.DateTimeField(allow_null=True)
    consecutiveFailures = serializers.IntegerField()


class PriorityPoolSerializer(serializers.Serializer):
    clusters = serializers.IntegerField(help_text="live clusters serving the priority (one per node)")
    size = serializers.IntegerField(help_text="their workers now")
    busy = serializers.IntegerField(help_text="of which running a run")
    minimum = serializers.IntegerField(help_text="workers each cluster keeps (WORKERS_MIN_<PRIORITY>)")
    maximum = serializers.IntegerField(help_text="workers each cluster may grow to (WORKERS_<PRIORITY>)")


class ScalingDecisionSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    priority = serializers.ChoiceField(choices=["high", "medium", "low"])
    to = serializers.IntegerField(help_text="workers after")
    reason = serializers.CharField()

    def get_fields(self):
        # `from` is a Python keyword: it cannot be declared as a class attribute.
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField(help_text="workers before")
        return {name: fields[name] for name in ("timestamp", "priority", "from", "to", "reason")}


class StatsSerializer(serializers.Serializer):
    workers = WorkerPoolSerializer()
    queue = QueueSerializer()
    completedTasks = serializers.IntegerField(help_text="executions that ended, all time")
    cache = CacheStatsSerializer()
    openCircuitBreakers = BreakerSerializer(many=True, help_text="breakers not closed")
    workersByPriority = serializers.DictField(
        child=PriorityPoolSerializer(), help_text="each priority's pool now, from its clusters' heartbeats"
    )
    recentScaling = ScalingDecisionSerializer(
        many=True, help_text="the 20 latest worker_pool_scaled events (the sentinels' decisions), newest first"
    )


STATS_EXAMPLE = {
    "workers": {"clusters": 3, "total": 10, "active": 2, "idle": 8, "utilization": 0.2},
    "queue": {"size": 0, "limit": 100, "waitSeconds": {"p50": 0.012, "p95": 0.041, "samples": 812,
                                                      "windowSeconds": 3600}},
    "completedTasks": 12890,
    "cache": {"keys": 212, "entries": 240, "sizeBytes": 1843200, "hits": 5120, "misses": 7770, "hitRate": 0.3972,
              "maxEntries": 1000, "ttlMs": 300000, "enabled": True},
    "openCircuitBreakers": [{"pluginId": "weather", "state": "open", "scope": "all", "organizationId": None,
                             "openedAt": "2026-11-26T21:40:12Z",
                             "consecutiveFailures": 5}],
    "workersByPriority": {
        "high": {"clusters": 1, "size": 6, "busy": 2, "minimum": 2, "maximum": 8},
        "medium": {"clusters": 1, "size": 2, "busy": 0, "minimum": 1, "maximum": 6},
        "low": {"clusters": 1, "size": 2, "busy": 0, "minimum": 1, "maximum": 6},
    },
    "recentScaling": [
        {"timestamp": "2026-11-26T21:52:03.418Z", "priority": "high", "from": 7, "to": 6,
         "reason": "a worker idle for 300 s"},
        {"timestamp": "2026-11-26T21:41:37.102Z", "priority": "high", "from": 2, "to": 7,
         "reason": "61 runs queued"},
    ],
}


METRICS_EXAMPLE = (
    "# HELP plugin_executions_total Executions that ended, by plugin, action and final status.\n"
    "# TYPE plugin_executions_total counter\n"
    'plugin_executions_total{action_name="wordCount",plugin_id="text-tools",status="success"} 42.0\n'
)

HEALTH_SCHEMA = dict(
    summary="Health of the service and its dependencies",
    responses={
        200: OpenApiResponse(
            HealthSerializer, description="healthy or degraded",
            examples=[OpenApiExample("Healthy", value=HEALTH_EXAMPLE)],
        ),
        503: OpenApiResponse(
            HealthSerializer, description="unhealthy: the database, broker, cluster or sandbox is down",
            examples=[OpenApiExample("No cluster", value={
                **HEALTH_EXAMPLE, "status": "unhealthy",
                "checks": {**HEALTH_EXAMPLE["checks"], "cluster": {
                    "status": "unhealthy", "clusters": 0, "message": "no qcluster heartbeat in the last 3 s"}},
            })],
        ),
    },
)
