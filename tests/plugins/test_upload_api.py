"""Plugin lifecycle through the API: upload, validation, versions, activation
and rollback, enable/disable, visibility. (The admin's upload form is in
test_upload_admin.py, publisher signatures in test_signing.py.)"""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from plugins.archive import MAX_ARCHIVE_BYTES, files_from_zip, sha256_hex
from plugins.models import Plugin, PluginVersion
from plugins.signing import files_digest
from tests.factories import EXAMPLE_NAMES
from tests.plugins.helpers import (
    BAD_ARCHIVES,
    SOURCE,
    assert_nothing_stored,
    assert_validation_error,
    example_zip,
    manifest,
    plugin_zip,
    upload,
    zip_of,
)


@pytest.fixture
def staff(make_org, make_client):
    return make_client(make_org("operators"), staff=True)


@pytest.fixture
def globex(make_org, make_client):
    return make_client(make_org("globex"))


# --- upload -----------------------------------------------------------------


@pytest.mark.django_db
def test_an_organization_uploads_a_private_plugin(api, org):
    response = upload(api, plugin_zip())
    assert response.status_code == 201, response.content
    body = response.json()
    version = PluginVersion.objects.get()
    assert body["pluginId"] == "echo" and body["version"] == "1.0.0" and body["active"] is True
    assert body["sha256"] == version.sha256 == sha256_hex(bytes(version.archive))
    assert body["filesDigest"] == files_digest(files_from_zip(plugin_zip()))
    assert body["signed"] is False and body["signedBy"] is None
    assert response["Location"] == "http://testserver/plugins/echo"
    assert version.plugin.owner == org

    detail = api.get("/plugins/echo").json()
    assert detail["public"] is False and detail["owner"] == "acme" and detail["enabled"] is True
    assert detail["activeVersion"] == "1.0.0"
    assert detail["actions"] == [{"name": "echo", "description": "Echo the params", "cacheable": False}]
    assert detail["versions"] == [{key: body[key] for key in detail["versions"][0]}]

    event = AuditEvent.objects.get(type="plugin_version_uploaded")
    assert event.organization == org and event.actor_id.startswith("acme:") and event.target_id == "echo"


@pytest.mark.django_db
def test_a_single_module_uploads_with_its_manifest_as_text_or_as_a_file(api):
    module = SimpleUploadedFile("echo.py", SOURCE.encode())
    response = api.post("/plugins", {"source": module, "manifest": json.dumps(manifest())}, format="multipart")
    assert response.status_code == 201, response.content

    module = SimpleUploadedFile("echo.py", SOURCE.encode())
    manifest_file = SimpleUploadedFile("plugin.json", json.dumps(manifest(version="1.1.0")).encode())
    response = api.post("/plugins", {"source": module, "manifest": manifest_file}, format="multipart")
    assert response.status_code == 201, response.content
    assert sorted(PluginVersion.objects.values_list("version", flat=True)) == ["1.0.0", "1.1.0"]


@pytest.mark.django_db
def test_a_staff_key_uploads_public_plugins_or_for_an_owner(staff, org):
    assert upload(staff, plugin_zip("shared")).status_code == 201
    assert Plugin.objects.get(slug="shared").owner is None
    assert upload(staff, plugin_zip("theirs"), owner="acme").status_code == 201
    assert Plugin.objects.get(slug="theirs").owner == org
    assert_validation_error(upload(staff, plugin_zip("nobodys"), owner="nobody"), "owner")


@pytest.mark.django_db
def test_an_organization_cannot_upload_for_another(api, globex):
    response = upload(api, plugin_zip(), owner="globex")
    assert response.status_code == 403 and response.json()["error"]["type"] == "PERMISSION_DENIED"
    upload(api, plugin_zip())
    # The id is taken: another organization cannot add versions to it.
    assert_validation_error(upload(globex, plugin_zip(version="2.0.0")), "name", "another organization")
    assert PluginVersion.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_rejected_naming_the_problem_and_nothing_is_stored(api, case):
    archive, field, complaint = BAD_ARCHIVES[case]
    assert_validation_error(upload(api, archive), field, complaint)
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields,field,complaint",
    [
        ({}, "archive", "nothing uploaded"),
        ({"source": ("echo.py", SOURCE.encode())}, "manifest", "is required with `source`"),
        (
            {"archive": ("p.zip", plugin_zip()), "source": ("echo.py", SOURCE.encode())},
            "archive",
            "not both",
        ),
    ],
)
def test_an_incomplete_upload_is_rejected(api, fields, field, complaint):
    data = {name: SimpleUploadedFile(*value) for name, value in fields.items()}
    assert_validation_error(api.post("/plugins", data, format="multipart"), field, complaint)
    assert_nothing_stored()


@pytest.mark.django_db
def test_an_upload_over_the_size_cap_is_rejected(api):
    response = upload(api, b"\0" * (MAX_ARCHIVE_BYTES + 2 * 1024 * 1024))
    assert response.status_code == 400 and response.json()["error"]["type"] == "VALIDATION_ERROR"
    assert "over the limit" in response.json()["error"]["message"]
    # Under the body limit but over the archive cap: refused before it is opened.
    assert_validation_error(upload(api, b"\0" * (MAX_ARCHIVE_BYTES + 1)), "archive", "larger than")
    assert_nothing_stored()


@pytest.mark.django_db
def test_an_upload_must_be_multipart(api):
    response = api.post("/plugins", {"archive": "x"}, format="json")
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


# --- versions, activation, rollback -------------------------------------------


@pytest.mark.django_db
def test_a_new_version_becomes_active_and_activating_the_old_one_rolls_back(api, org):
    upload(api, plugin_zip(version="1.0.0"))
    upload(api, plugin_zip(version="1.1.0"))
    assert api.get("/plugins/echo").json()["activeVersion"] == "1.1.0"
    inactive = upload(api, plugin_zip(version="1.2.0"), activate="false")
    assert inactive.status_code == 201 and inactive.json()["active"] is False
    assert api.get("/plugins/echo").json()["activeVersion"] == "1.1.0"

    response = api.post("/plugins/echo/activate", {"version": "1.0.0"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["activeVersion"] == "1.0.0"
    versions = [(version["version"], version["active"]) for version in body["versions"]]
    assert versions == [("1.2.0", False), ("1.1.0", False), ("1.0.0", True)]
    event = AuditEvent.objects.get(type="plugin_state_changed")
    assert event.organization == org and event.target_id == "echo"
    assert event.metadata == {"change": "activated", "version": "1.0.0", "previousVersion": "1.1.0"}


@pytest.mark.django_db
def test_versions_are_immutable(api):
    upload(api, plugin_zip())
    sha256 = PluginVersion.objects.get().sha256
    changed = plugin_zip(source=SOURCE + "\n# changed\n")
    assert_validation_error(upload(api, changed), "version", "immutable")
    assert PluginVersion.objects.get().sha256 == sha256


@pytest.mark.django_db
def test_activating_an_unknown_version_is_not_found(api):
    upload(api, plugin_zip())
    response = api.post("/plugins/echo/activate", {"version": "9.9.9"}, format="json")
    assert response.status_code == 404 and response.json()["error"]["type"] == "PLUGIN_NOT_FOUND"
    assert_validation_error(api.post("/plugins/echo/activate", {}, format="json"), "version")


@pytest.mark.django_db
def test_disable_and_enable(api, org):
    upload(api, plugin_zip())
    response = api.post("/plugins/echo/disable")
    assert response.status_code == 200 and response.json()["enabled"] is False
    refused = api.post("/execute", {"pluginId": "echo", "actionName": "echo"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "PLUGIN_DISABLED"
    assert api.post("/plugins/echo/disable").json()["enabled"] is False
    assert api.post("/plugins/echo/enable").json()["enabled"] is True
    changes = AuditEvent.objects.filter(type="plugin_state_changed").order_by("timestamp", "pk")
    # Disabling twice is one change.
    assert [event.metadata["change"] for event in changes] == ["disabled", "enabled"]


# --- visibility ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_private_plugin_is_invisible_to_other_organizations(api, globex, staff):
    upload(api, plugin_zip("secret-sauce"))
    upload(staff, plugin_zip("shared"))

    assert [plugin["id"] for plugin in api.get("/plugins").json()["plugins"]] == ["secret-sauce", "shared"]
    assert [plugin["id"] for plugin in globex.get("/plugins").json()["plugins"]] == ["shared"]
    for response in (
        globex.get("/plugins/secret-sauce"),
        globex.post("/plugins/secret-sauce/activate", {"version": "1.0.0"}, format="json"),
        globex.post("/plugins/secret-sauce/disable"),
        globex.post("/plugins/secret-sauce/enable"),
        globex.post("/execute", {"pluginId": "secret-sauce", "actionName": "echo"}, format="json"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["error"]["type"] == "PLUGIN_NOT_FOUND"
    assert Plugin.objects.get(slug="secret-sauce").enabled is True
    # Operators see everything.
    assert staff.get("/plugins/secret-sauce").json()["owner"] == "acme"


@pytest.mark.django_db
def test_only_operators_change_a_public_plugin(api, staff):
    upload(staff, plugin_zip("shared"))
    assert api.get("/plugins/shared").json()["public"] is True
    response = api.post("/plugins/shared/disable")
    assert response.status_code == 403 and response.json()["error"]["type"] == "PERMISSION_DENIED"
    assert upload(api, plugin_zip("shared", version="2.0.0")).status_code == 400
    assert staff.post("/plugins/shared/disable").json()["enabled"] is False


@pytest.mark.django_db
def test_plugin_endpoints_need_a_key(api):
    from rest_framework.test import APIClient

    for response in (APIClient().get("/plugins"), APIClient().post("/plugins", {}, format="multipart")):
        assert response.status_code == 401 and response.json()["error"]["type"] == "AUTHENTICATION_FAILED"


@pytest.mark.django_db
def test_the_examples_upload_through_the_api(staff):
    for name in EXAMPLE_NAMES:
        assert upload(staff, example_zip(name)).status_code == 201
    assert {plugin["id"] for plugin in staff.get("/plugins").json()["plugins"]} == set(EXAMPLE_NAMES)


@pytest.mark.slow
def test_rollback_runs_the_old_code_again(live, api):
    for version, answer in (("1.0.0", "one"), ("2.0.0", "two")):
        source = f"def echo(params, ctx):\n    return {{'answer': {answer!r}}}\n"
        assert upload(api, plugin_zip(version=version, source=source)).status_code == 201

    def run():
        response = api.post("/execute", {"pluginId": "echo", "actionName": "echo"}, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["result"]["answer"]

    assert run() == "two"
    assert api.post("/plugins/echo/activate", {"version": "1.0.0"}, format="json").status_code == 200
    assert run() == "one"
