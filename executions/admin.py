import uuid

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from core.admin_bases import ReadOnlyAdmin, admin_actor_id, badge, json_block, mebibytes
from plugins.admin import PluginAdmin
from plugins.models import Plugin

from . import breaker, cache
from .callbacks import callback_summary
from .models import CircuitBreaker, Execution, ExecutionAttempt


STATUS_BADGE_COLORS = {
    Execution.Status.QUEUED: "#757575",
    Execution.Status.RUNNING: "#1565c0",
    Execution.Status.SUCCESS: "#2e7d32",
    Execution.Status.ERROR: "#c62828",
    Execution.Status.TIMEOUT: "#ef6c00",
}


BREAKER_BADGE_COLORS = {
    CircuitBreaker.State.CLOSED: "#2e7d32",
    CircuitBreaker.State.HALF_OPEN: "#ef6c00",
    CircuitBreaker.State.OPEN: "#c62828",
}


def status_badge(status):
    return badge(status, STATUS_BADGE_COLORS.get(status, "#757575"))


def duration(milliseconds):
    if milliseconds is None:
        return "—"
    return f"{milliseconds} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.2f} s"


class ExecutionAttemptInline(admin.TabularInline):
    """Each run in the sandbox: the first and its retries."""

    model = ExecutionAttempt
    fields = ["number", "outcome", "error_type", "error_message", "run_time", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Status")
    def outcome(self, attempt):
        return status_badge(attempt.status)

    @admin.display(description="Run time")
    def run_time(self, attempt):
        return duration(attempt.execution_time_ms)


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id", "organization", "plugin", "action", "outcome", "error_type", "cached", "run_time", "actor",
        "finished_at",
    ]
    list_display_links = ["short_id"]
    list_filter = ["status", "error_type", ("plugin_version__plugin", admin.RelatedOnlyFieldListFilter), "organization",
                   "cache_hit", "queued_at"]
    list_select_related = ["organization", "plugin_version__plugin"]
    search_fields = ["actor_id"]
    date_hierarchy = "queued_at"
    readonly_fields = [
        "outcome", "answered_from_cache", "events", "pretty_params", "timeout", "callback", "memory_limit",
        "pretty_result", "pretty_logs", "logs_cut", "queue_wait", "run_time", "cpu_time", "peak_memory",
    ]

    def get_fieldsets(self, request, obj=None):
        outcome = ["pretty_result", "retry_count"]
        # The error's fields, and the fallback's explanation ("the run
        # failed and this answer was given instead"), only where they apply.
        if obj is not None and obj.error_type:
            error = ["error_type", "error_message", "error_details", "error_traceback"]
            outcome[1:1] = [name for name in error if getattr(obj, name)]
        if obj is not None and obj.fallback:
            outcome.append("fallback")
        return [
            (None, {"fields": ["id", "organization", "actor_id", "plugin_version", "action", "outcome",
                               "answered_from_cache", "events"]}),
            ("Request", {"fields": ["pretty_params", "timeout", "memory_limit"]
                         + (["callback_url", "callback"] if obj is not None and obj.callback_url else [])}),
            ("Outcome", {"fields": outcome}),
            ("Logs", {"fields": ["pretty_logs", "logs_cut"]}),
            ("Timing and resources", {"fields": [
                "queued_at", "started_at", "queue_wait", "finished_at", "run_time", "cpu_time", "peak_memory", "worker",
            ]}),
        ]

    inlines = [ExecutionAttemptInline]

    def get_queryset(self, request):
        # The changelist and detail pages never need the plugins' code archives.
        return super().get_queryset(request).defer("plugin_version__archive")

    def get_search_results(self, request, queryset, search_term):
        # An execution id (with or without dashes) finds that execution;
        # anything else is looked for in actor ids.
        try:
            execution_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=execution_id), False

    @admin.display(description="Id", ordering="id")
    def short_id(self, execution):
        return format_html('<span title="{}">{}</span>', execution.pk, str(execution.pk)[:8])

    @admin.display(description="Status", ordering="status")
    def outcome(self, execution):
        return status_badge(execution.status)

    @admin.display(description="Cache", ordering="cache_hit")
    def cached(self, execution):
        # Words, not Django's boolean icons: a red cross reads as a failure.
        return "hit" if execution.cache_hit else ""

    @admin.display(description="Cache hit")
    def answered_from_cache(self, execution):
        return "yes: answered from the result cache, nothing ran" if execution.cache_hit else "no"

    @admin.display(description="Logs truncated")
    def logs_cut(self, execution):
        return "yes: the plugin logged more than is kept" if execution.logs_truncated else "no"

    @admin.display(description="Timeout")
    def timeout(self, execution):
        return duration(execution.timeout_ms)

    @admin.display(description="Duration", ordering="execution_time_ms")
    def run_time(self, execution):
        # A cache hit ran nothing: no duration rather than "0 ms".
        return "—" if execution.cache_hit else duration(execution.execution_time_ms)

    @admin.display(description="CPU time")
    def cpu_time(self, execution):
        return duration(execution.cpu_time_ms)

    @admin.display(description="Actor", ordering="actor_id")
    def actor(self, execution):
        return execution.actor_id or "—"

    @admin.display(description="Memory limit")
    def memory_limit(self, execution):
        return f"{execution.memory_limit_mb} MiB"

    @admin.display(description="Peak memory")
    def peak_memory(self, execution):
        return mebibytes(execution.peak_memory_bytes)

    @admin.display(description="Audit events")
    def events(self, execution):
        url = reverse("admin:audit_auditevent_changelist")
        return format_html('<a href="{}?q={}">The events of this execution</a>', url, execution.pk)

    @admin.display(description="Plugin", ordering="plugin_version__plugin__slug")
    def plugin(self, execution):
        return execution.plugin_version

    @admin.display(description="Callback")
    def callback(self, execution):
        return json_block(callback_summary(execution))

    @admin.display(description="Params")
    def pretty_params(self, execution):
        return json_block(execution.params)

    @admin.display(description="Result")
    def pretty_result(self, execution):
        return json_block(execution.result)

    @admin.display(description="Logs")
    def pretty_logs(self, execution):
        return json_block(execution.logs)

    @admin.display(description="Waited in the queue")
    def queue_wait(self, execution):
        if execution.started_at is None:
            return "—"
        return f"{(execution.started_at - execution.queued_at).total_seconds():.3f} s"


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(ReadOnlyAdmin):
    list_display = ["plugin", "scope", "position", "failures", "opened_at", "probes", "updated_at"]
    list_filter = ["state", ("organization", admin.EmptyFieldListFilter)]
    list_select_related = ["plugin", "organization"]
    search_fields = ["plugin__slug", "organization__slug"]
    actions = ["reset"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("executions.change_circuitbreaker")

    @admin.display(description="Open for", ordering="organization__slug")
    def scope(self, circuit):
        return circuit.scope_label

    @admin.display(description="State", ordering="state")
    def position(self, circuit):
        return badge(circuit.get_state_display(), BREAKER_BADGE_COLORS[circuit.state])

    @admin.display(description="Failures in a row", ordering="consecutive_failures")
    def failures(self, circuit):
        return circuit.consecutive_failures

    @admin.display(description="Probes (running / passed)")
    def probes(self, circuit):
        return f"{circuit.probes_in_flight} / {circuit.probe_successes}"

    @admin.action(description="Reset (close) selected breakers", permissions=["change"])
    def reset(self, request, queryset):
        for circuit in queryset:
            breaker.reset(circuit, actor_id=admin_actor_id(request))
        self.message_user(request, f"Closed {len(queryset)} breaker(s).", messages.SUCCESS)


# The plugin page's actions on what runs (its cached results, its breaker)
# belong to this app; it adds them to the plugins app's page.
admin.site.unregister(Plugin)


@admin.register(Plugin)
class PluginWithRunsAdmin(PluginAdmin):
    actions = [*PluginAdmin.actions, "invalidate_cache", "reset_breaker"]

    @admin.action(description="Invalidate cached results of selected plugins", permissions=["change"])
    def invalidate_cache(self, request, queryset):
        removed = sum(cache.invalidate_plugin(plugin.slug, actor_id=admin_actor_id(request)) for plugin in queryset)
        self.message_user(request, f"Dropped {removed} cached result(s) of {len(queryset)} plugin(s).", messages.SUCCESS)

    @admin.action(description="Reset (close) the circuit breakers of selected plugins", permissions=["change"])
    def reset_breaker(self, request, queryset):
        # Each plugin's breaker for everyone and those of single organizations.
        for circuit in CircuitBreaker.objects.filter(plugin__in=queryset):
            breaker.reset(circuit, actor_id=admin_actor_id(request))
        self.message_user(request, f"Closed the circuit breakers of {len(queryset)} plugin(s).", messages.SUCCESS)
