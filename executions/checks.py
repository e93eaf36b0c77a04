from django.core import checks

from .callbacks import callback_policy


@checks.register()
def check_callback_allowed_hosts(app_configs, **kwargs):
    """A bad CALLBACK_ALLOWED_HOSTS entry would refuse every callbackUrl at submission."""
    try:
        callback_policy()
    except ValueError as error:
        return [checks.Error(f"CALLBACK_ALLOWED_HOSTS: {error}", hint="host names or IP addresses, comma-separated",
                             id="executions.E001")]
    return []
