from django.contrib import admin


class EngineAdminSite(admin.AdminSite):
    """The operator console: Django's admin, its home page linking to the dashboard."""

    index_template = "admin/observability/index.html"
