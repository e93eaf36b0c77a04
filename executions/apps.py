from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'executions'

    def ready(self):
        from . import checks  # noqa: F401 (registers the system checks)
