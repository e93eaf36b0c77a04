"""Admin pieces the apps share."""

import json

from django.contrib import admin
from django.utils.html import format_html


def admin_actor_id(request):
    """The actor id audit events record for a change made in the admin."""
    return f"admin:{request.user.get_username()}"


def json_block(value):
    """A JSON value pretty-printed for a read-only admin field."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the engine itself: operators look, they never edit."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
