from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ObservabilityConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "observability"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401 (registers the system checks)

        post_migrate.connect(record_key_fingerprints, sender=self)


def record_key_fingerprints(sender, using, **kwargs):
    """Every node migrates when it starts (`make run`): the first one to do
    so records the keys all must share."""
    from .shared_keys import record_fingerprints

    if using == "default":
        record_fingerprints()


class EngineAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the engine's site as `admin.site`."""

    default = False
    default_site = "observability.admin_site.EngineAdminSite"
