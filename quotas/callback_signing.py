"""Each organization's callback signing secret: made on first need, read by
the organization (its receivers check signatures with it), rotated on
request. Encrypted at rest with the stored secrets' keys (quotas.secrets)."""

import secrets

from cryptography.fernet import InvalidToken
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent

from .models import CallbackSigningSecret
from .secrets import SecretUnreadable, current_key_id, fernet

# A prefix says what the value is wherever it is pasted.
SECRET_PREFIX = "whsec_"


def signing_secret(organization, *, actor_id=""):
    """(value, created_at) of the organization's signing secret, made now if it has none."""
    record = CallbackSigningSecret.objects.filter(organization=organization).first()
    if record is None:
        try:
            return _store(organization, "created", actor_id)
        except IntegrityError:  # another process made it first
            record = CallbackSigningSecret.objects.get(organization=organization)
    return _decrypted(record), record.created_at


def rotate_signing_secret(organization, *, actor_id=""):
    """Replace the organization's signing secret with a new one; (value, created_at).
    Callbacks signed from now on use it; a delivery retried later is signed again."""
    return _store(organization, "rotated", actor_id)


def _store(organization, change, actor_id):
    value = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    fields = {"ciphertext": fernet().encrypt(value.encode()).decode(), "key_id": current_key_id(), "created_at": now}
    with transaction.atomic():
        if change == "created":
            CallbackSigningSecret.objects.create(organization=organization, **fields)
        else:
            CallbackSigningSecret.objects.update_or_create(organization=organization, defaults=fields)
        # That it changed, never the value.
        record_event(
            AuditEvent.Type.CALLBACK_SECRET_CHANGED, organization=organization, actor_id=actor_id,
            target_id=organization.slug, metadata={"change": change},
        )
    return value, now


def _decrypted(record):
    try:
        return fernet().decrypt(record.ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            f"the callback signing secret of {record.organization_id} cannot be decrypted: its key "
            f"({record.key_id}) is no longer in SECRETS_ENCRYPTION_KEY; rotate it"
        ) from None
