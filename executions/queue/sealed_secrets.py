"""Request-level secrets travel from the web process to a worker in the
queued execution's row, until the run ends: they are sealed with a key
derived from SECRET_KEY so that the database never holds them in clear, and
are never written anywhere else."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

# Sealed secrets only need to outlive the queue wait.
MAX_SEALED_AGE_SECONDS = 24 * 3600


def _fernet():
    # The label is fixed (it names the module that first did this), so that
    # secrets sealed by an older release still open.
    key = hashlib.sha256(b"executions.transport:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal_secrets(secrets):
    if not secrets:
        return None
    return _fernet().encrypt(json.dumps(secrets).encode()).decode()


class SecretsUnreadable(Exception):
    pass


def unseal_secrets(token):
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode(), ttl=MAX_SEALED_AGE_SECONDS))
    except InvalidToken:
        raise SecretsUnreadable("the run's secrets could not be unsealed (expired, or SECRET_KEY changed)") from None
