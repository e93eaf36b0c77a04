from django.db import models


class AuditEvent(models.Model):
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
        EXECUTION_RECOVERED = "execution_recovered"
        PROCESS_RESTARTED = "process_restarted"
        WORKER_POOL_SCALED = "worker_pool_scaled"
        CALLBACK_ATTEMPTED = "callback_attempted"
        CALLBACK_SECRET_CHANGED = "callback_secret_changed"

    type = models.CharField(max_length=40, choices=Type.choices, db_index=True)
    actor_id = models.CharField(max_length=200, blank=True)
    target_id = models.CharField(max_length=200, blank=True, db_index=True)
    # By name, not by import: audit sits below the tenants app, which writes
    # events of its own (quota resets, secret changes).
    organization = models.ForeignKey(
        "quotas.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        # The table kept its name when the model moved here from `executions`.
        db_table = "executions_executionevent"
        ordering = ["-timestamp"]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.type} {self.target_id}"
