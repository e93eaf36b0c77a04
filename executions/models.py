import uuid

from django.db import models


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCESS = "success"
        ERROR = "error"
        TIMEOUT = "timeout"

    TERMINAL = (Status.SUCCESS, Status.ERROR, Status.TIMEOUT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("quotas.Organization", on_delete=models.PROTECT, related_name="executions")
    actor_id = models.CharField(max_length=200, blank=True)
    plugin_version = models.ForeignKey("plugins.PluginVersion", on_delete=models.PROTECT, related_name="executions")
    action = models.CharField(max_length=200)
    params = models.JSONField(default=dict)
    timeout_ms = models.PositiveIntegerField()
    memory_limit_mb = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error_type = models.CharField(max_length=40, blank=True, db_index=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True, help_text="The plugin's own frames, secrets redacted.")
    result = models.JSONField(null=True, blank=True)
    logs = models.JSONField(default=list, blank=True)
    logs_truncated = models.BooleanField(default=False)
    cache_hit = models.BooleanField(default=False)
    retry_count = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the worker that ran it")
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="A run still running after this lost its worker."
    )
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    execution_time_ms = models.PositiveIntegerField(null=True, blank=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    cpu_time_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [models.Index(fields=["organization", "-queued_at"])]

    def __str__(self):
        return f"{self.id} {self.plugin_version} {self.action} {self.status}"

    @property
    def is_terminal(self):
        return self.status in self.TERMINAL

    @property
    def plugin_slug(self):
        return self.plugin_version.plugin.slug


class EgressWindow(models.Model):
    """Requests one plugin made through the egress broker in one minute,
    counted in the database so every worker process shares the limit."""

    plugin_slug = models.SlugField(max_length=64)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plugin_slug", "window_start"], name="one_egress_window_per_plugin_minute")
        ]


class ExecutionEvent(models.Model):
    """The audit log: one row per thing that happened, never updated."""

    class Type(models.TextChoices):
        PLUGIN_ACTION_EXECUTED = "plugin_action_executed"
        QUOTA_EXCEEDED = "quota_exceeded"
        QUOTA_RESET = "quota_reset"
        CACHE_INVALIDATED = "cache_invalidated"
        CACHE_CLEARED = "cache_cleared"
        CIRCUIT_BREAKER_STATE_CHANGED = "circuit_breaker_state_changed"
        PLUGIN_VERSION_UPLOADED = "plugin_version_uploaded"
        PLUGIN_STATE_CHANGED = "plugin_state_changed"
        SECRET_CHANGED = "secret_changed"
        EGRESS_REQUEST = "egress_request"
        OWNER_NOTIFIED = "owner_notified"

    type = models.CharField(max_length=40, choices=Type.choices, db_index=True)
    actor_id = models.CharField(max_length=200, blank=True)
    target_id = models.CharField(max_length=200, blank=True, db_index=True)
    organization = models.ForeignKey(
        "quotas.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp"]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.type} {self.target_id}"
