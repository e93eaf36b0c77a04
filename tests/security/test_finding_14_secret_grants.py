"""Finding 14: a stored secret went to whatever plugin declared its name.
Whoever publishes a new version of a public plugin could declare
GITHUB_TOKEN and receive every organization's token. Now the organization
grants each secret to plugins by id; declared but not granted, it is absent
from `ctx.secrets`."""

import hashlib
import importlib
import secrets

import pytest
from django.apps import apps
from django.urls import reverse

from audit.models import AuditEvent
from quotas.models import OrganizationSecret
from quotas.secrets import set_secret
from tests.factories import install_source

pytestmark = pytest.mark.django_db

HARVEST = """
import hashlib

def harvest(params, ctx):
    token = ctx.secrets.get("GITHUB_TOKEN")
    return {"names": sorted(ctx.secrets), "sha256": token and hashlib.sha256(token.encode()).hexdigest()}
"""


def publish(version, **manifest):
    """A public plugin, as its publisher (not the organization) uploads it."""
    return install_source("helper", HARVEST, {"harvest": "harvest"}, version=version, **manifest)


def grant(api, name, *plugins):
    return api.put(f"/secrets/{name}/plugins", {"plugins": list(plugins)}, format="json")


@pytest.mark.slow
def test_a_new_version_declaring_a_secret_gets_it_only_once_granted(live, api, org):
    token = "ghp_" + secrets.token_hex(16)
    assert api.put("/secrets/GITHUB_TOKEN", {"value": token}, format="json").status_code == 201
    publish("1.0.0")
    # The publisher's next version starts asking for the organization's token.
    publish("1.1.0", secrets=["GITHUB_TOKEN"])

    def harvested():
        response = api.post("/execute", {"pluginId": "helper", "actionName": "harvest"}, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["result"]

    assert harvested() == {"names": [], "sha256": None}

    granted = grant(api, "GITHUB_TOKEN", "helper")
    assert granted.status_code == 200, granted.json()
    assert granted.json()["plugins"] == ["helper"]
    assert harvested() == {"names": ["GITHUB_TOKEN"], "sha256": hashlib.sha256(token.encode()).hexdigest()}

    revoked = grant(api, "GITHUB_TOKEN")
    assert revoked.status_code == 200 and revoked.json()["plugins"] == []
    assert harvested() == {"names": [], "sha256": None}

    changes = AuditEvent.objects.filter(type="secret_changed").order_by("timestamp", "pk")
    assert [(event.metadata["change"], event.metadata.get("pluginId")) for event in changes] == [
        ("created", None), ("granted", "helper"), ("revoked", "helper"),
    ]
    assert all(event.target_id == "GITHUB_TOKEN" and token not in str(event.metadata) for event in changes)


def test_grants_are_listed_and_refused_for_plugins_the_organization_cannot_run(api, org, make_org, make_client):
    set_secret(org, "GITHUB_TOKEN", "ghp_" + secrets.token_hex(16))
    publish("1.0.0", secrets=["GITHUB_TOKEN"])
    install_source("theirs", HARVEST, {"harvest": "harvest"}, owner=make_org("globex"), secrets=["GITHUB_TOKEN"])
    install_source("ours", HARVEST, {"harvest": "harvest"}, owner=org, secrets=["GITHUB_TOKEN"])

    for plugins in (["theirs"], ["nonexistent"], ["ours", "theirs"]):
        refused = grant(api, "GITHUB_TOKEN", *plugins)
        assert refused.status_code == 404, refused.json()
        error = refused.json()["error"]
        assert error["type"] == "PLUGIN_NOT_FOUND" and error["retryable"] is False
        assert [detail["field"] for detail in error["details"]] == ["plugins"]
        assert "ours" not in error["message"]
    for body in ({"plugins": "helper"}, {}, ["helper"]):
        malformed = api.put("/secrets/GITHUB_TOKEN/plugins", body, format="json")
        assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "VALIDATION_ERROR"
    assert not OrganizationSecret.objects.get().plugins.exists()

    missing = grant(api, "NO_SUCH_SECRET", "helper")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NOT_FOUND"

    assert grant(api, "GITHUB_TOKEN", "ours", "helper").json()["plugins"] == ["helper", "ours"]
    assert [secret["plugins"] for secret in api.get("/secrets").json()["secrets"]] == [["helper", "ours"]]
    # Granting again what is granted changes nothing and records nothing.
    before = AuditEvent.objects.count()
    assert grant(api, "GITHUB_TOKEN", "ours", "helper").status_code == 200
    assert AuditEvent.objects.count() == before

    # Another organization can neither see nor set them.
    assert grant(make_client(make_org("initech")), "GITHUB_TOKEN").status_code == 404
    assert OrganizationSecret.objects.get().plugins.count() == 2


def test_the_admin_grants_only_plugins_the_organization_can_run(admin_client, org, make_org):
    record, _ = set_secret(org, "GITHUB_TOKEN", "ghp_" + secrets.token_hex(16))
    public = publish("1.0.0", secrets=["GITHUB_TOKEN"]).plugin
    theirs = install_source("theirs", HARVEST, {"harvest": "harvest"}, owner=make_org("globex")).plugin
    url = reverse("admin:quotas_organizationsecret_change", args=[record.pk])

    refused = admin_client.post(url, {"value": "", "granted_plugins": [theirs.pk]})
    assert refused.status_code == 200 and not record.plugins.exists()

    assert admin_client.post(url, {"value": "", "granted_plugins": [public.pk]}).status_code == 302
    assert list(record.plugins.all()) == [public]
    assert admin_client.post(url, {"value": ""}).status_code == 302
    assert not record.plugins.exists()
    event = AuditEvent.objects.filter(type="secret_changed").latest("timestamp")
    assert (event.metadata["change"], event.metadata["pluginId"]) == ("revoked", "helper")
    assert event.actor_id == "admin:admin"


def test_the_migration_grants_each_secret_to_the_plugins_that_declared_it(org, make_org):
    """Existing installs keep working; nothing else is granted."""
    migration = importlib.import_module("quotas.migrations.0004_organizationsecret_plugins")
    record, _ = set_secret(org, "GITHUB_TOKEN", "ghp_" + secrets.token_hex(16))
    declared_before = publish("1.0.0", secrets=["GITHUB_TOKEN"]).plugin
    publish("1.1.0")  # its active version no longer declares it; the old one, still runnable, does
    ours = install_source("ours", HARVEST, {"harvest": "harvest"}, owner=org, secrets=["GITHUB_TOKEN"]).plugin
    install_source("silent", HARVEST, {"harvest": "harvest"})
    install_source("theirs", HARVEST, {"harvest": "harvest"}, owner=make_org("globex"), secrets=["GITHUB_TOKEN"])

    migration.grant_to_current_declarers(apps, None)
    assert set(record.plugins.all()) == {declared_before, ours}
