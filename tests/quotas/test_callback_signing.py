"""Each organization's callback signing secret: made on first request, the
same until rotated, encrypted at rest, read and rotated through the API and
the management command, each change an event without the value."""

import json

from django.core.management import call_command

from audit.models import AuditEvent
from quotas.models import CallbackSigningSecret


def test_the_secret_is_made_once_and_kept_until_rotated(api, org):
    first = api.get("/callbacks/signing-secret")
    assert first.status_code == 200, first.json()
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert api.get("/callbacks/signing-secret").json() == first.json()
    rotated = api.post("/callbacks/signing-secret/rotate")
    assert rotated.status_code == 200 and rotated.json()["secret"] not in (secret, "")
    assert api.get("/callbacks/signing-secret").json()["secret"] == rotated.json()["secret"]
    events = AuditEvent.objects.filter(type="callback_secret_changed", organization=org).order_by("id")
    assert [event.metadata for event in events] == [{"change": "created"}, {"change": "rotated"}]
    assert secret not in json.dumps([event.metadata for event in events])


def test_each_organization_has_its_own_and_it_is_stored_encrypted(api, make_org, make_client):
    other = make_client(make_org("globex"))
    mine, theirs = api.get("/callbacks/signing-secret").json(), other.get("/callbacks/signing-secret").json()
    assert mine["secret"] != theirs["secret"]
    stored = CallbackSigningSecret.objects.values_list("ciphertext", flat=True)
    assert len(stored) == 2 and not any(value["secret"] in text for value in (mine, theirs) for text in stored)


def test_the_command_prints_and_rotates_it(org, capsys):
    call_command("callback_signing_secret", org.slug)
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    call_command("callback_signing_secret", org.slug, "--rotate")
    rotated = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["organization"] == org.slug and rotated["secret"] != printed["secret"]
    assert AuditEvent.objects.filter(type="callback_secret_changed", actor_id="cli").count() == 2


def test_rotate_secrets_reencrypts_signing_secrets_too(api, settings):
    from cryptography.fernet import Fernet

    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    secret = api.get("/callbacks/signing-secret").json()["secret"]
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), settings.SECRETS_ENCRYPTION_KEYS[0]]
    call_command("rotate_secrets")
    settings.SECRETS_ENCRYPTION_KEYS = settings.SECRETS_ENCRYPTION_KEYS[:1]
    assert api.get("/callbacks/signing-secret").json()["secret"] == secret
