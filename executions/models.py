import uuid

from django.db import models

from core.fields import VerbatimJSONField


class ExecutionQuerySet(models.QuerySet):
    def with_plugin(self):
        """With the plugin version, plugin, organization and tier joined in,
        but not the version's code archive (up to megabytes, never needed
        here: runs take the plugin's bytecode from a per-process cache)."""
        return self.select_related("plugin_version__plugin", "organization__tier").defer("plugin_version__archive")

    def in_flight(self):
        """Runs queued or running: what holds an organization's concurrent slots."""
        return self.filter(status__in=[Execution.Status.QUEUED, Execution.Status.RUNNING])


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCESS = "success"
        ERROR = "error"
        TIMEOUT = "timeout"

    TERMINAL = (Status.SUCCESS, Status.ERROR, Status.TIMEOUT)

    objects = ExecutionQuerySet.as_manager()

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("quotas.Organization", on_delete=models.PROTECT, related_name="executions")
    actor_id = models.CharField(max_length=200, blank=True)
    plugin_version = models.ForeignKey("plugins.PluginVersion", on_delete=models.PROTECT, related_name="executions")
    action = models.CharField(max_length=200)
    params = VerbatimJSONField(default=dict)
    timeout_ms = models.PositiveIntegerField()
    memory_limit_mb = models.PositiveIntegerField()
    # The queue: a queued execution is taken by a worker of its priority's
    # cluster (executions.queue.claims); it must start before start_deadline.
    priority = models.CharField(max_length=10, default="low", help_text="Its tier's priority when it was admitted.")
    start_deadline = models.DateTimeField(
        null=True, blank=True, help_text="A run not started by then waited too long and ends as TIMEOUT."
    )
    long_running = models.BooleanField(
        default=False,
        help_text="Its action declares a timeout above LONG_RUN_MS: it may not take a priority's last worker.",
    )
    sealed_secrets = models.TextField(
        blank=True, editable=False, help_text="The request's own secrets, encrypted, until the run ends."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error_type = models.CharField(max_length=40, blank=True, db_index=True)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True, help_text="The plugin's own frames, secrets redacted.")
    error_details = VerbatimJSONField(
        null=True, blank=True, help_text="What the plugin said of params it rejected (ctx.reject), secrets redacted."
    )
    result = VerbatimJSONField(null=True, blank=True)
    logs = models.JSONField(default=list, blank=True)
    logs_truncated = models.BooleanField(default=False)
    cache_hit = models.BooleanField(default=False)
    cache_key = models.CharField(max_length=64, blank=True, help_text="Empty when the action is not cacheable.")
    fallback = models.CharField(
        max_length=20, blank=True, choices=[("", "none"), ("stale_cache", "stale cached result"), ("default", "action default")],
        help_text="The run failed and this answer was given instead.",
    )
    idempotency_key = models.CharField(max_length=200, blank=True)
    callback_url = models.CharField(
        max_length=2000, blank=True, help_text="POSTed the execution's final body when it ends (executions.callbacks)."
    )
    request_fingerprint = models.CharField(max_length=64, blank=True)
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
        indexes = [
            models.Index(fields=["organization", "-queued_at"]),
            models.Index(fields=["status", "priority", "queued_at"], name="execution_queue"),
            # An organization's runs in flight, counted at every admission:
            # without it the count walks every run the organization ever had.
            models.Index(
                fields=["organization"],
                condition=models.Q(status__in=["queued", "running"]),
                name="execution_in_flight",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="one_execution_per_idempotency_key",
            )
        ]

    def __str__(self):
        return f"{self.id} {self.plugin_version} {self.action} {self.status}"

    @property
    def is_terminal(self):
        return self.status in self.TERMINAL

    @property
    def plugin_slug(self):
        return self.plugin_version.plugin.slug


class CallbackDelivery(models.Model):
    """The POST of an ended execution's body to its callback URL, written in
    the transaction that ends the execution and sent by the clusters'
    couriers (executions.callbacks), again with back-off until delivered or
    out of attempts."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    execution = models.OneToOneField(
        Execution, primary_key=True, on_delete=models.CASCADE, related_name="callback_delivery"
    )
    url = models.CharField(max_length=2000)
    priority = models.CharField(max_length=10, help_text="Sent by a courier of this priority's clusters.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When a courier may send it (again); pushed ahead while one is sending."
    )
    body = models.TextField(blank=True, help_text="The body as first sent, so that every attempt is the same; dropped once delivered or given up.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "priority", "next_attempt_at"], name="callback_due")]

    def __str__(self):
        return f"{self.execution_id} -> {self.url} {self.state}"


class ExecutionAttempt(models.Model):
    """One run of an execution in the sandbox; retries add attempts."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=10)
    error_type = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    execution_time_ms = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["execution", "number"]
        constraints = [models.UniqueConstraint(fields=["execution", "number"], name="unique_attempt_number")]

    def __str__(self):
        return f"{self.execution_id} #{self.number} {self.status}"


class CachedResult(models.Model):
    """A successful result, kept for CACHE_TTL (fresh) and then while it may
    still serve as a stale fallback; shared by every process and node."""

    key = models.CharField(max_length=64, unique=True)
    plugin_slug = models.SlugField(max_length=64, db_index=True)
    organization = models.ForeignKey("quotas.Organization", on_delete=models.CASCADE, related_name="+")
    payload = models.BinaryField()
    compressed = models.BooleanField(default=False)
    size_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.plugin_slug} {self.key[:12]}"


class CircuitBreaker(models.Model):
    """Breaker state of one plugin, in the database so that every node agrees.

    One row per plugin with no organization: the breaker for everyone. Rows
    with an organization: that organization's own breaker of the plugin,
    opened by its failures alone (executions.breaker)."""

    class State(models.TextChoices):
        CLOSED = "closed"
        OPEN = "open"
        HALF_OPEN = "half_open"

    plugin = models.ForeignKey("plugins.Plugin", on_delete=models.CASCADE, related_name="breakers")
    organization = models.ForeignKey(
        "quotas.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Empty: the breaker for every organization.",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The breaker for everyone: whose failures these are, so that one
    # organization alone cannot open it.
    last_failing_organization = models.ForeignKey(
        "quotas.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    several_organizations = models.BooleanField(default=False)
    opened_at = models.DateTimeField(null=True, blank=True)
    probes_in_flight = models.PositiveSmallIntegerField(default=0)
    probe_successes = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # NULLs are distinct in a unique index (SQLite and PostgreSQL):
            # the one row for everyone needs a constraint of its own.
            models.UniqueConstraint(
                fields=["plugin"], condition=models.Q(organization__isnull=True), name="one_breaker_for_all_per_plugin"
            ),
            models.UniqueConstraint(
                fields=["plugin", "organization"], condition=models.Q(organization__isnull=False),
                name="one_breaker_per_plugin_and_organization",
            ),
        ]

    def __str__(self):
        return f"{self.plugin.slug} ({self.scope_label}): {self.state}"

    @property
    def scope_label(self):
        return "all organizations" if self.organization_id is None else f"organization {self.organization.slug}"


class EgressWindow(models.Model):
    """Requests one organization's runs of one plugin sent through the egress
    broker in one minute, counted in the database so every worker process
    shares the limit. Per organization, so that one tenant cannot spend a
    public plugin's budget for all the others."""

    organization = models.ForeignKey("quotas.Organization", on_delete=models.CASCADE, related_name="+")
    plugin_slug = models.SlugField(max_length=64)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "plugin_slug", "window_start"], name="one_egress_window_per_org_plugin_minute"
            )
        ]
