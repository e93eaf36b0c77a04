"""Organizations' stored secrets: encrypted at rest, write-only through the API
and the admin, given to a plugin only when declared and granted, and
redacted from everything a run leaves behind."""

import hashlib
import io
import json
import pickle
import secrets
import zlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from audit.models import AuditEvent
from executions.egress_gateway import EgressGateway
from executions.models import CachedResult, Execution
from executions.redaction import REDACTED, Redactor
from quotas.models import OrganizationSecret
from quotas.secrets import (
    SecretUnreadable,
    key_id,
    reencrypt_secrets,
    set_secret,
    stored_secrets,
)
from tests.factories import install_source

pytestmark = pytest.mark.django_db


def new_value():
    # Mixed case, so that a lowercased copy (a hostname) would be caught too.
    return "SeCrEt" + secrets.token_hex(12)


@pytest.fixture
def reader(org):
    """A plugin of the organization that declares API_TOKEN."""
    source = "def read(params, ctx):\n    return 1\n"
    return install_source("reader", source, {"read": "read"}, owner=org, secrets=["API_TOKEN"]).plugin


def read_back(org, reader, names=frozenset({"API_TOKEN"})):
    """What `reader` would receive, every stored secret granted to it."""
    for secret in OrganizationSecret.objects.filter(organization=org):
        secret.plugins.add(reader)
    return stored_secrets(org, names, reader)


def raw_rows(table):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT * FROM "{table}"')
        return cursor.fetchall()


def contains(blob, value):
    """Whether `value` is in a database value or file content, in any letter case."""
    if isinstance(blob, memoryview):
        blob = bytes(blob)
    if isinstance(blob, bytes):
        return value.lower().encode() in blob.lower()
    if isinstance(blob, (dict, list)):
        # PostgreSQL's json columns come back decoded.
        blob = json.dumps(blob, ensure_ascii=False)
    return isinstance(blob, str) and value.lower() in blob.lower()


# --- encryption at rest and rotation -------------------------------------------


def test_a_stored_secret_is_encrypted_at_rest(org, reader):
    value = new_value()
    record, created = set_secret(org, "API_TOKEN", value, actor_id="person_1")
    assert created
    assert not any(contains(column, value) for row in raw_rows("quotas_organizationsecret") for column in row)
    assert read_back(org, reader, {"API_TOKEN", "OTHER"}) == {"API_TOKEN": value}
    assert read_back(org, reader, set()) == {}

    event = AuditEvent.objects.get(type="secret_changed")
    assert (event.organization, event.actor_id, event.target_id) == (org, "person_1", "API_TOKEN")
    assert event.metadata == {"name": "API_TOKEN", "change": "created"}


def test_keys_rotate(org, reader, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_ENCRYPTION_KEYS = [old]
    value = new_value()
    set_secret(org, "API_TOKEN", value)
    assert OrganizationSecret.objects.get().key_id == key_id(old.encode())

    # The new key first: old values still decrypt, until they are re-encrypted.
    settings.SECRETS_ENCRYPTION_KEYS = [new, old]
    assert read_back(org, reader) == {"API_TOKEN": value}
    out = io.StringIO()
    call_command("rotate_secrets", stdout=out)
    assert json.loads(out.getvalue().splitlines()[-1]) == {"reencrypted": 1, "unreadable": []}
    assert OrganizationSecret.objects.get().key_id == key_id(new.encode())
    assert AuditEvent.objects.filter(type="secret_changed", metadata__change="reencrypted").count() == 1
    assert reencrypt_secrets() == (0, [])

    # The old key can go now.
    settings.SECRETS_ENCRYPTION_KEYS = [new]
    assert read_back(org, reader) == {"API_TOKEN": value}

    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUnreadable, match="API_TOKEN cannot be decrypted"):
        read_back(org, reader)
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_secrets", stdout=io.StringIO(), stderr=io.StringIO())


def test_without_a_configured_key_one_is_derived_and_check_deploy_warns(org, reader, settings):
    from quotas.checks import (
        check_secrets_encryption_key_is_set,
        check_secrets_encryption_keys,
    )

    settings.SECRETS_ENCRYPTION_KEYS = []
    set_secret(org, "API_TOKEN", "value-1")
    assert read_back(org, reader) == {"API_TOKEN": "value-1"}
    assert [warning.id for warning in check_secrets_encryption_key_is_set(None)] == ["quotas.W001"]
    settings.SECRETS_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    assert [error.id for error in check_secrets_encryption_keys(None)] == ["quotas.E001"]
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert check_secrets_encryption_keys(None) == [] and check_secrets_encryption_key_is_set(None) == []


# --- API -----------------------------------------------------------------------


def test_secrets_are_written_listed_by_name_and_deleted_but_never_read(api, org, reader, make_org, make_client):
    value = new_value()
    created = api.put("/secrets/API_TOKEN", {"value": value}, format="json")
    assert created.status_code == 201, created.content
    assert set(created.json()) == {"name", "plugins", "createdAt", "updatedAt"}
    assert api.put("/secrets/API_TOKEN", {"value": value + "x"}, format="json").status_code == 200
    assert read_back(org, reader) == {"API_TOKEN": value + "x"}

    listing = api.get("/secrets")
    assert [secret["name"] for secret in listing.json()["secrets"]] == ["API_TOKEN"]
    assert value not in listing.content.decode()
    assert api.get("/secrets/API_TOKEN").status_code == 405

    # Another organization neither sees nor touches it.
    other = make_client(make_org("globex"))
    assert other.get("/secrets").json() == {"secrets": []}
    assert other.delete("/secrets/API_TOKEN").status_code == 404

    assert api.delete("/secrets/API_TOKEN").status_code == 204
    assert api.delete("/secrets/API_TOKEN").json()["error"]["type"] == "NOT_FOUND"
    changes = AuditEvent.objects.filter(type="secret_changed").order_by("timestamp", "pk")
    assert [event.metadata["change"] for event in changes] == ["created", "updated", "deleted"]
    assert not any(contains(json.dumps(event.metadata), value) for event in changes)


@pytest.mark.parametrize(
    "name,body,field",
    [
        ("api_token", {"value": "long enough"}, "name"),
        ("1TOKEN", {"value": "long enough"}, "name"),
        # Checked as stored: a trailing control character is not trimmed into a valid name (schemathesis).
        ("W%0D", {"value": "long enough"}, "name"),
        ("API_TOKEN%20", {"value": "long enough"}, "name"),
        ("API_TOKEN", {"value": "abc"}, "value"),
        ("API_TOKEN", {"value": "x" * 8193}, "value"),
        ("API_TOKEN", {}, "value"),
        ("API_TOKEN", {"value": 12345678}, "value"),
        ("API_TOKEN", {"value": "long enough", "note": "x"}, "note"),
    ],
)
def test_invalid_secrets_are_refused(api, name, body, field):
    response = api.put(f"/secrets/{name}", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]
    assert not OrganizationSecret.objects.exists()


# --- admin ---------------------------------------------------------------------


def test_the_admin_writes_secrets_but_never_shows_them(admin_client, org, reader):
    value = new_value()
    add = admin_client.get(reverse("admin:quotas_organizationsecret_add")).content.decode()
    assert 'type="password"' in add
    response = admin_client.post(
        reverse("admin:quotas_organizationsecret_add"),
        {"organization": org.pk, "name": "API_TOKEN", "value": value, "granted_plugins": [reader.pk]},
    )
    assert response.status_code == 302
    record = OrganizationSecret.objects.get()
    assert stored_secrets(org, {"API_TOKEN"}, reader) == {"API_TOKEN": value}
    assert set(AuditEvent.objects.filter(type="secret_changed").values_list("actor_id", flat=True)) == {"admin:admin"}

    change_url = reverse("admin:quotas_organizationsecret_change", args=[record.pk])
    for url in (reverse("admin:quotas_organizationsecret_changelist"), change_url):
        page = admin_client.get(url).content.decode()
        assert "API_TOKEN" in page and not contains(page, value) and record.ciphertext not in page

    # A failed submission does not send the typed value back either.
    again = admin_client.post(
        reverse("admin:quotas_organizationsecret_add"), {"organization": org.pk, "name": "API_TOKEN", "value": value}
    )
    assert again.status_code == 200 and "already exists" in again.content.decode()
    assert not contains(again.content.decode(), value)

    # Saved with the value left empty, the stored value stays.
    admin_client.post(change_url, {"value": "", "granted_plugins": [reader.pk]})
    assert stored_secrets(org, {"API_TOKEN"}, reader) == {"API_TOKEN": value}
    admin_client.post(change_url, {"value": value + "2", "granted_plugins": [reader.pk]})
    assert stored_secrets(org, {"API_TOKEN"}, reader) == {"API_TOKEN": value + "2"}

    admin_client.post(reverse("admin:quotas_organizationsecret_delete", args=[record.pk]), {"post": "yes"})
    assert not OrganizationSecret.objects.exists()
    changes = AuditEvent.objects.filter(type="secret_changed").order_by("timestamp", "pk")
    assert [event.metadata["change"] for event in changes] == ["created", "granted", "updated", "deleted"]


# --- redaction -----------------------------------------------------------------


def test_redaction_catches_every_spelling_of_the_value():
    redactor = Redactor(["SeCrEt-1234", "abc", None])
    assert redactor.text("key SeCrEt-1234 and secret-1234") == f"key {REDACTED} and {REDACTED}"
    # Too short to redact without mangling ordinary text.
    assert redactor.text("abc") == "abc"
    # JSON escapes decode to the value: caught once decoded.
    escaped = '{"k": "\\u0053eCrEt-1234", "SeCrEt-1234": ["x SeCrEt-1234"]}'
    assert json.loads(redactor.json_text(escaped)) == {"k": REDACTED, REDACTED: [f"x {REDACTED}"]}
    assert redactor.data({"host": "secret-1234.example.com", "n": 1}) == {"host": f"{REDACTED}.example.com", "n": 1}


def test_egress_events_never_carry_a_secret(org):
    value = new_value()
    version = install_source("fetcher", "def go(params, ctx):\n    return 1\n", {"go": "go"}, secrets=["API_TOKEN"])
    execution = Execution.objects.create(
        organization=org, plugin_version=version, action="go", timeout_ms=1000, memory_limit_mb=128
    )
    gateway = EgressGateway(execution, {"API_TOKEN": value})
    answer = gateway({"method": f"GET{value}", "url": f"https://{value}.example.com/?key={value}"})
    assert answer["ok"] is False
    event = AuditEvent.objects.get(type="egress_request")
    assert not contains(json.dumps(event.metadata), value)
    assert REDACTED in event.metadata["host"] and REDACTED in event.metadata["method"]


# --- end to end: a stored secret through the real cluster and sandbox ------------------

LEAKY = """
import hashlib

def leak(params, ctx):
    token = ctx.secrets["API_TOKEN"]
    ctx.log("the token is " + token)
    print("printed:", token)
    return {"token": token, "upper": token.upper(), "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "names": sorted(ctx.secrets), token: "as a key"}

def fail(params, ctx):
    ctx.log("failing with " + ctx.secrets["API_TOKEN"])
    raise ValueError("cannot use " + ctx.secrets["API_TOKEN"])

def leak_much(params, ctx):
    # Large enough to be stored compressed in the result cache.
    return {"tokens": [ctx.secrets["API_TOKEN"]] * 500}

def call_out(params, ctx):
    token = ctx.secrets["API_TOKEN"]
    try:
        ctx.http.get("https://" + token + ".example.com/?key=" + token)
    except Exception as error:
        return {"refused": str(error)}
    return {"refused": None}
"""


def database_values():
    """Every value of every table, read with raw SQL."""
    for table in connection.introspection.table_names():
        for row in raw_rows(table):
            yield from ((table, column) for column in row)


def files_holding(value):
    """SQLite's database files (main, WAL), file-cache entries and Redis
    values whose bytes hold the value. (A database server's files are out of
    reach and compress large values: database_values() reads what it keeps.)"""
    found = []
    if connection.vendor == "sqlite":
        database = Path(django_settings.DATABASES["default"]["NAME"])
        found += [path for path in database.parent.glob(database.name + "*") if contains(path.read_bytes(), value)]
    if django_settings.CACHES["default"]["BACKEND"].endswith("RedisCache"):
        client = cache._cache.get_client()
        found += [key for key in client.scan_iter() if contains(client.get(key), value)]
    cache_dir = Path(django_settings.CACHES["default"].get("LOCATION", ""))
    for entry in cache_dir.glob("*.djcache") if cache_dir.is_dir() else []:
        with open(entry, "rb") as handle:
            pickle.load(handle)  # the expiry time
            if contains(zlib.decompress(handle.read()), value):
                found.append(entry)
    return found


@pytest.mark.slow
def test_a_stored_secret_reaches_only_its_plugin_and_is_never_written_in_clear(live, api, org, admin_client):
    value, undeclared, per_request = new_value(), new_value(), new_value()
    assert api.put("/secrets/API_TOKEN", {"value": value}, format="json").status_code == 201
    assert api.put("/secrets/UNDECLARED", {"value": undeclared}, format="json").status_code == 201
    cached = {"handler": "leak_much", "params": {"type": "object"}, "cacheable": True}
    actions = {"leak": "leak", "fail": "fail", "callOut": "call_out", "leakMuch": cached}
    install_source("leaky", LEAKY, actions, owner=org, secrets=["API_TOKEN"])
    # Granted both, it still receives only the name it declares.
    for name in ("API_TOKEN", "UNDECLARED"):
        granted = api.put(f"/secrets/{name}/plugins", {"plugins": ["leaky"]}, format="json")
        assert granted.status_code == 200 and granted.json()["plugins"] == ["leaky"]

    def execute(action, **body):
        return api.post("/execute", {"pluginId": "leaky", "actionName": action, **body}, format="json")

    leaked = execute("leak")
    assert leaked.status_code == 200, leaked.json()
    result = leaked.json()["result"]
    # It reached the plugin, exactly, and alone of the organization's secrets.
    assert result["sha256"] == hashlib.sha256(value.encode()).hexdigest()
    assert result["names"] == ["API_TOKEN"]
    assert result["token"] == result["upper"] == REDACTED and result[REDACTED] == "as a key"
    assert leaked.json()["logs"] == [f"the token is {REDACTED}", f"printed: {REDACTED}"]

    failed = execute("fail")
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "PLUGIN_ERROR"
    assert failed.json()["error"]["message"] == f"ValueError: cannot use {REDACTED}"

    called = execute("callOut")
    assert called.status_code == 200 and called.json()["result"]["refused"]
    assert AuditEvent.objects.filter(type="egress_request").count() == 1

    # Results are cached as they were stored: redacted.
    first, again = execute("leakMuch"), execute("leakMuch")
    assert first.json()["cacheHit"] is False and again.json()["cacheHit"] is True
    assert set(again.json()["result"]["tokens"]) == {REDACTED}
    entry = CachedResult.objects.get()
    assert entry.compressed
    assert set(json.loads(zlib.decompress(bytes(entry.payload)))["tokens"]) == {REDACTED}

    # A request's own value wins for its run, and is not kept either.
    overridden = execute("leak", secrets={"API_TOKEN": per_request})
    assert overridden.json()["result"]["sha256"] == hashlib.sha256(per_request.encode()).hexdigest()

    pages = [
        reverse("admin:executions_execution_changelist"),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:quotas_organizationsecret_changelist"),
    ]
    pages += [
        reverse("admin:executions_execution_change", args=[pk]) for pk in Execution.objects.values_list("pk", flat=True)
    ]
    pages += [
        reverse("admin:audit_auditevent_change", args=[pk])
        for pk in AuditEvent.objects.values_list("pk", flat=True)
    ]
    pages += [
        reverse("admin:quotas_organizationsecret_change", args=[pk])
        for pk in OrganizationSecret.objects.values_list("pk", flat=True)
    ]
    runs = [leaked, failed, called, first, again, overridden]
    responses = runs + [admin_client.get(page) for page in pages]
    assert all(response.status_code == 200 for response in responses[len(runs):])

    # The searches below do see what was written: the plugin's code, the
    # stored result and the admin's rendering of the redacted values.
    if connection.vendor == "sqlite":
        assert files_holding("raise ValueError(")
    assert "executions_execution" in {table for table, column in database_values() if contains(column, "as a key")}
    assert any(REDACTED in response.content.decode() for response in responses[len(runs):])
    for secret in (value, undeclared, per_request):
        assert not [response for response in responses if contains(response.content, secret)]
        assert not [table for table, column in database_values() if contains(column, secret)]
        assert not files_holding(secret)
