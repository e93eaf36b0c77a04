from django.contrib import admin

from core.admin_bases import ReadOnlyAdmin, json_block

from .models import AuditEvent


@admin.register(AuditEvent)
class ExecutionEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "type", "organization", "actor_id", "target_id"]
    list_filter = ["type", "organization"]
    list_select_related = ["organization"]
    search_fields = ["target_id", "actor_id"]
    date_hierarchy = "timestamp"
    fields = ["timestamp", "type", "organization", "actor_id", "target_id", "pretty_metadata"]

    @admin.display(description="Metadata")
    def pretty_metadata(self, event):
        return json_block(event.metadata)
