from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ObservabilityConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "observability"

    def ready(self):
        from . import checks  # noqa: F401 (registers the system checks)


class EngineAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the engine's site as `admin.site`."""

    default = False
    default_site = "observability.admin_site.EngineAdminSite"
