import uuid

from django.contrib import admin
from django.db.models import Q

from core.admin_bases import ReadOnlyAdmin, json_block

from .models import AuditEvent


@admin.register(AuditEvent)
class ExecutionEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "type", "organization", "actor_id", "target_id"]
    list_filter = ["type", "organization"]
    list_select_related = ["organization"]
    search_fields = ["target_id", "actor_id"]
    search_help_text = (
        "An execution id finds the events of that execution; anything else is looked for in targets and actors."
    )
    date_hierarchy = "timestamp"
    fields = ["timestamp", "type", "organization", "actor_id", "target_id", "pretty_metadata"]

    def get_search_results(self, request, queryset, search_term):
        # An execution's events name it as their target (a lost run given
        # back) or in their metadata (its outcome, its HTTP requests).
        try:
            execution_id = str(uuid.UUID(search_term.strip()))
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(Q(target_id=execution_id) | Q(metadata__executionId=execution_id)), False

    @admin.display(description="Metadata")
    def pretty_metadata(self, event):
        return json_block(event.metadata)
