import uuid

from django.contrib import admin, messages

from core.admin_bases import ReadOnlyAdmin, admin_actor_id, json_block
from plugins.admin import PluginAdmin
from plugins.models import Plugin

from . import breaker, cache
from .callbacks import callback_summary
from .models import CircuitBreaker, Execution, ExecutionAttempt


class ExecutionAttemptInline(admin.TabularInline):
    """Each run in the sandbox: the first and its retries."""

    model = ExecutionAttempt
    fields = ["number", "status", "error_type", "error_message", "execution_time_ms", "started_at", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = [
        "id", "organization", "plugin", "action", "status", "error_type", "cache_hit", "execution_time_ms", "queued_at",
    ]
    list_filter = ["status", "error_type", ("plugin_version__plugin", admin.RelatedOnlyFieldListFilter), "organization",
                   "cache_hit", "queued_at"]
    list_select_related = ["organization", "plugin_version__plugin"]
    search_fields = ["actor_id"]
    date_hierarchy = "queued_at"
    fieldsets = [
        (None, {"fields": ["id", "organization", "actor_id", "plugin_version", "action", "status", "cache_hit"]}),
        ("Request", {"fields": ["pretty_params", "timeout_ms", "memory_limit_mb", "callback_url", "callback"]}),
        ("Outcome", {"fields": ["pretty_result", "error_type", "error_message", "error_details", "error_traceback",
                                "retry_count", "fallback"]}),
        ("Logs", {"fields": ["pretty_logs", "logs_truncated"]}),
        (
            "Timing and resources",
            {
                "fields": [
                    "queued_at", "started_at", "queue_wait", "finished_at", "execution_time_ms", "cpu_time_ms",
                    "peak_memory_bytes", "worker",
                ]
            },
        ),
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
    list_display = ["plugin", "scope", "state", "consecutive_failures", "opened_at", "probes_in_flight",
                    "probe_successes", "updated_at"]
    list_filter = ["state", ("organization", admin.EmptyFieldListFilter)]
    list_select_related = ["plugin", "organization"]
    search_fields = ["plugin__slug", "organization__slug"]
    actions = ["reset"]

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("executions.change_circuitbreaker")

    @admin.display(description="Open for", ordering="organization__slug")
    def scope(self, circuit):
        return circuit.scope_label

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
