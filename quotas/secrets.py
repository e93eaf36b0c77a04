"""Organizations' stored secrets: encrypted at rest, written and deleted, never shown.

Values are encrypted with Fernet (AES-128-CBC with HMAC-SHA256) under the
keys in SECRETS_ENCRYPTION_KEY: the first key encrypts, every key decrypts.
To rotate, an operator puts a new key first, runs `manage.py rotate_secrets`
(which re-encrypts every value with it) and then drops the old key.

Without SECRETS_ENCRYPTION_KEY the key is derived from SECRET_KEY, which
then protects the secrets too: whoever has SECRET_KEY can decrypt them, and
changing SECRET_KEY makes them unreadable. Set SECRETS_ENCRYPTION_KEY in
production (`manage.py check --deploy` warns when it is not set).

A value reaches a plugin only when the plugin declares its name *and* the
organization granted the secret to that plugin (grant_secret): whoever
publishes a new version of a public plugin can declare any name.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from audit.events import record_event
from audit.models import AuditEvent
from core.errors import EngineError

from .models import CallbackSigningSecret, OrganizationSecret

# Very short values would redact ordinary words and numbers everywhere.
MIN_SECRET_LENGTH = 4
MAX_SECRET_LENGTH = 8192


class SecretUnreadable(Exception):
    """A stored value that no configured key decrypts."""


def _derived_key():
    digest = hashlib.sha256(b"quotas.secrets:" + settings.SECRET_KEY.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def encryption_keys():
    """The configured Fernet keys as bytes, the encrypting one first."""
    return [key.encode() for key in settings.SECRETS_ENCRYPTION_KEYS] or [_derived_key()]


def key_id(key):
    """A short name for a key, stored beside each value it encrypted; never the key itself."""
    return hashlib.sha256(key).hexdigest()[:12]


def fernet():
    """The MultiFernet of the configured keys; ImproperlyConfigured for a malformed one."""
    fernets = []
    for position, key in enumerate(encryption_keys(), start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEY entry {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes, as Fernet.generate_key() makes)"
            ) from None
    return MultiFernet(fernets)


def current_key_id():
    return key_id(encryption_keys()[0])


def set_secret(organization, name, value, *, actor_id=""):
    """Store or replace one of the organization's secrets; returns (record, created).

    The name and value are validated by the caller (the API's serializer,
    the admin's form): a name in UPPER_SNAKE_CASE, a value of at least
    MIN_SECRET_LENGTH characters so that it can be
    redacted wherever it would appear.
    """
    ciphertext = fernet().encrypt(value.encode()).decode()
    with transaction.atomic():
        record, created = OrganizationSecret.objects.update_or_create(
            organization=organization, name=name, defaults={"ciphertext": ciphertext, "key_id": current_key_id()}
        )
        _record_change(organization, name, "created" if created else "updated", actor_id)
    return record, created


def delete_secret(organization, name, *, actor_id=""):
    """Forget one of the organization's secrets; False if there was none."""
    with transaction.atomic():
        deleted, _ = OrganizationSecret.objects.filter(organization=organization, name=name).delete()
        if deleted:
            _record_change(organization, name, "deleted", actor_id)
    return bool(deleted)


def grantable_plugins(organization):
    """The plugins the organization may grant its secrets to: those it can run,
    public or its own."""
    # Reached through the relation: quotas sits below plugins and imports nothing of it.
    plugin_model = OrganizationSecret._meta.get_field("plugins").related_model
    return plugin_model.objects.visible_to(organization)


def grant_secret(secret, plugin, *, actor_id=""):
    """Let `plugin` receive `secret` when its manifest declares the name;
    False if it already could. PLUGIN_NOT_FOUND for a plugin the secret's
    organization cannot run."""
    if not grantable_plugins(secret.organization).filter(pk=plugin.pk).exists():
        raise EngineError("PLUGIN_NOT_FOUND", f"no plugin {plugin.slug!r}")
    with transaction.atomic():
        _, granted = OrganizationSecret.plugins.through.objects.get_or_create(organizationsecret=secret, plugin=plugin)
        if granted:
            _record_change(secret.organization, secret.name, "granted", actor_id, pluginId=plugin.slug)
    return granted


def revoke_secret(secret, plugin, *, actor_id=""):
    """Stop `plugin` receiving `secret`; False if it was not granted."""
    with transaction.atomic():
        grant = OrganizationSecret.plugins.through.objects.filter(organizationsecret=secret, plugin=plugin)
        revoked, _ = grant.delete()
        if revoked:
            _record_change(secret.organization, secret.name, "revoked", actor_id, pluginId=plugin.slug)
    return bool(revoked)


def set_secret_grants(secret, plugins, *, actor_id=""):
    """Grant `secret` to exactly `plugins`: one grant or revocation (and its
    event) per plugin that changes, all or none."""
    wanted = set(plugins)
    with transaction.atomic():
        current = set(secret.plugins.all())
        for plugin in sorted(wanted - current, key=lambda plugin: plugin.slug):
            grant_secret(secret, plugin, actor_id=actor_id)
        for plugin in sorted(current - wanted, key=lambda plugin: plugin.slug):
            revoke_secret(secret, plugin, actor_id=actor_id)


def _record_change(organization, name, change, actor_id, **details):
    # The name and what happened; the value, in any form, never.
    record_event(
        AuditEvent.Type.SECRET_CHANGED,
        organization=organization,
        actor_id=actor_id,
        target_id=name,
        metadata={"name": name, "change": change, **details},
    )


def stored_secrets(organization, names, plugin):
    """{name: value} of the organization's stored secrets among `names` that
    it granted to `plugin` (a Plugin or its pk).

    Raises SecretUnreadable when a value cannot be decrypted with the
    configured keys (its key was dropped, or SECRET_KEY changed).
    """
    if not names:
        return {}
    cipher = fernet()
    values = {}
    granted = OrganizationSecret.objects.filter(organization=organization, name__in=names, plugins=plugin)
    for record in granted:
        try:
            values[record.name] = cipher.decrypt(record.ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                f"the stored secret {record.name} cannot be decrypted: its key ({record.key_id}) "
                "is no longer in SECRETS_ENCRYPTION_KEY"
            ) from None
    return values


def reencrypt_secrets(*, actor_id=""):
    """Re-encrypt every value not yet under the first key with it (key rotation).

    Returns (number re-encrypted, names of the records no key decrypts,
    which are left as they are).
    """
    cipher = fernet()
    current = current_key_id()
    rotated, unreadable = 0, []
    with transaction.atomic():
        # Only the secrets' rows: locking their organizations would hold up
        # every admission of theirs until the rotation ends.
        for model in (OrganizationSecret, CallbackSigningSecret):
            stale = model.objects.select_for_update(of=("self",)).select_related("organization").exclude(
                key_id=current
            )
            for record in stale:
                try:
                    ciphertext = cipher.rotate(record.ciphertext.encode()).decode()
                except InvalidToken:
                    unreadable.append(str(record))
                    continue
                # update(), not save(): the value is unchanged, so is updated_at.
                model.objects.filter(pk=record.pk).update(ciphertext=ciphertext, key_id=current)
                rotated += 1
        if rotated:
            record_event(
                AuditEvent.Type.SECRET_CHANGED,
                actor_id=actor_id,
                target_id="*",
                metadata={"change": "reencrypted", "count": rotated, "keyId": current},
            )
    return rotated, unreadable
