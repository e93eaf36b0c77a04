from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .signing import trusted_keys


@checks.register(checks.Tags.security)
def check_trusted_publisher_keys(app_configs, **kwargs):
    try:
        keys = trusted_keys()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="plugins.E001")]
    if settings.PLUGIN_REQUIRE_SIGNATURE and not keys:
        return [
            checks.Error(
                "PLUGIN_REQUIRE_SIGNATURE is on but PLUGIN_TRUSTED_KEYS is empty, so no plugin can be installed",
                id="plugins.E002",
            )
        ]
    return []
