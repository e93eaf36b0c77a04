from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .client_address import trusted_proxies


@checks.register(checks.Tags.security)
def check_trusted_proxies_parse(app_configs, **kwargs):
    """A malformed TRUSTED_PROXIES entry is found at start-up, not by the
    first request that authenticates."""
    try:
        trusted_proxies()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="List addresses or CIDR networks, comma-separated.", id="core.E001")]
    return []
