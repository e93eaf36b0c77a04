from django.contrib import admin


class EngineAdminSite(admin.AdminSite):
    """The operator console: Django's admin, its home page linking to the dashboard."""

    index_template = "admin/observability/index.html"
    # The console's lists are wide (executions, keys, breakers): their
    # columns need the room the navigation sidebar would take. Breadcrumbs
    # and the home page lead everywhere.
    enable_nav_sidebar = False
    # The same dash as the console's own "nothing here" (no actor, no duration).
    empty_value_display = "—"
