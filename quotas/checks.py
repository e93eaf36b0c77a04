from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .secrets import fernet


@checks.register(checks.Tags.security)
def check_secrets_encryption_keys(app_configs, **kwargs):
    try:
        fernet()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="quotas.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def check_secrets_encryption_key_is_set(app_configs, **kwargs):
    if settings.SECRETS_ENCRYPTION_KEYS:
        return []
    return [
        checks.Warning(
            "SECRETS_ENCRYPTION_KEY is not set: organizations' stored secrets are encrypted with a key derived "
            "from SECRET_KEY, so anyone with SECRET_KEY can read them and changing it makes them unreadable.",
            hint="Set SECRETS_ENCRYPTION_KEY to a key from cryptography.fernet.Fernet.generate_key().",
            id="quotas.W001",
        )
    ]
