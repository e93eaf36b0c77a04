from django.apps import AppConfig


class QuotasConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'quotas'

    def ready(self):
        from . import checks  # noqa: F401 (registers the system checks)
