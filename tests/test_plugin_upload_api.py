"""Plugin lifecycle through the API and the admin: upload, validation, versions,
activation and rollback, enable/disable, visibility and publisher signatures."""

import base64
import io
import json
import stat
import subprocess
import zipfile

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEvent
from plugins.archive import MAX_ARCHIVE_BYTES, files_from_zip, sha256_hex
from plugins.models import Plugin, PluginVersion
from plugins.signing import files_digest, key_fingerprint

from .conftest import EXAMPLES

SOURCE = "def echo(params, ctx):\n    return {'echo': params}\n"


def manifest(name="echo", version="1.0.0", **extra):
    return {
        "name": name,
        "version": version,
        "entrypoint": "plugin.py",
        "description": f"{name} plugin",
        "actions": {"echo": {"handler": "echo", "description": "Echo the params", "params": {"type": "object"}}},
        **extra,
    }


def zip_of(*entries):
    """A zip of (name or ZipInfo, text or bytes) entries, as an uploader might build it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def plugin_zip(name="echo", version="1.0.0", source=SOURCE, **extra):
    return zip_of(("plugin.json", json.dumps(manifest(name, version, **extra))), ("plugin.py", source))


def upload(client, archive=None, **fields):
    data = dict(fields)
    if archive is not None:
        data["archive"] = SimpleUploadedFile("plugin.zip", archive, content_type="application/zip")
    return client.post("/plugins", data, format="multipart")


def assert_validation_error(response, field, *words):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and error["retryable"] is False
    problems = {detail["field"]: detail["message"] for detail in error["details"]}
    assert field in problems, problems
    for word in words:
        assert word in problems[field] and word in error["message"]
    return error


def assert_nothing_stored():
    assert not Plugin.objects.exists()
    assert not PluginVersion.objects.exists()
    assert not AuditEvent.objects.exists()


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
    assert response["Location"] == "/plugins/echo"
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


def _symlink():
    link = zipfile.ZipInfo("plugin.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return link


BAD_ARCHIVES = {
    "zip slip": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("../../evil.py", "x = 1\n")),
        "archive",
        "'..'",
    ),
    "absolute path": (
        zip_of(("plugin.json", json.dumps(manifest())), ("/etc/evil.py", "x = 1\n")),
        "archive",
        "absolute",
    ),
    "symlink": (
        zip_of(("plugin.json", json.dumps(manifest())), (_symlink(), "/etc/passwd")),
        "archive",
        "symbolic link",
    ),
    "zip bomb": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("data.txt", "a" * (900 * 1024))),
        "archive",
        "zip bomb",
    ),
    "missing handler": (
        plugin_zip(source="def something_else(params, ctx):\n    return 1\n"),
        "actions.echo.handler",
        "'echo' is not a top-level function",
    ),
    "syntax error": (plugin_zip(source="def echo(params, ctx)\n    return 1\n"), "plugin.py", "line 1"),
    "bad schema": (
        zip_of(("plugin.json", json.dumps(manifest(version="one"))), ("plugin.py", SOURCE)),
        "version",
        "semantic version",
    ),
    "bad params schema": (
        zip_of(
            ("plugin.json", json.dumps(manifest(actions={"echo": {"handler": "echo", "params": {"type": "nope"}}}))),
            ("plugin.py", SOURCE),
        ),
        "actions.echo.params.type",
        "not a valid JSON Schema",
    ),
    "manifest not JSON": (zip_of(("plugin.json", "{nope"), ("plugin.py", SOURCE)), "plugin.json", "not valid JSON"),
    "no manifest": (zip_of(("plugin.py", SOURCE)), "archive", "plugin.json is missing"),
    "not a zip": (b"this is not a zip file", "archive", "not a readable zip file"),
    "binary file": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("helper.so", b"\x7fELF")),
        "archive",
        "only .py, .json, .txt, .md",
    ),
}


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


# --- admin --------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_upload_form_stores_a_version(admin_client, org):
    add_url = reverse("admin:plugins_plugin_add")
    page = admin_client.get(add_url)
    assert page.status_code == 200 and 'name="archive"' in page.content.decode()

    archive = SimpleUploadedFile("echo.zip", plugin_zip())
    response = admin_client.post(add_url, {"archive": archive, "owner": org.pk, "activate": "on"})
    version = PluginVersion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:plugins_plugin_change", args=[version.plugin.pk])
    assert version.plugin.owner == org and version.is_active
    assert AuditEvent.objects.get(type="plugin_version_uploaded").actor_id == "admin:admin"

    # A single module with its manifest, as a new version of the same plugin.
    module = SimpleUploadedFile("echo.py", SOURCE.encode())
    plugin_json = SimpleUploadedFile("plugin.json", json.dumps(manifest(version="1.1.0")).encode())
    admin_client.post(add_url, {"source": module, "manifest": plugin_json, "owner": org.pk})
    assert PluginVersion.objects.get(version="1.1.0").is_active is False

    change = admin_client.get(reverse("admin:plugins_plugin_change", args=[version.plugin.pk])).content.decode()
    assert version.sha256 in change


@pytest.mark.django_db
def test_admin_upload_form_shows_the_problems_and_stores_nothing(admin_client):
    archive = SimpleUploadedFile("evil.zip", BAD_ARCHIVES["zip slip"][0])
    response = admin_client.post(reverse("admin:plugins_plugin_add"), {"archive": archive})
    assert response.status_code == 200
    assert "The plugin was not stored" in response.content.decode()
    assert "archive: &#x27;../../evil.py&#x27;" in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_admin_activation_and_enabling_are_audited(admin_client):
    add_url = reverse("admin:plugins_plugin_add")
    assert admin_client.post(add_url, {"archive": SimpleUploadedFile("a.zip", plugin_zip())}).status_code == 302
    newer = SimpleUploadedFile("b.zip", plugin_zip(version="2.0.0"))
    assert admin_client.post(add_url, {"archive": newer, "activate": "on"}).status_code == 302
    old = PluginVersion.objects.get(version="1.0.0")
    versions, plugins = reverse("admin:plugins_pluginversion_changelist"), reverse("admin:plugins_plugin_changelist")
    admin_client.post(versions, {"action": "activate", "_selected_action": [old.pk]})
    admin_client.post(plugins, {"action": "disable", "_selected_action": [old.plugin.pk]})
    changes = AuditEvent.objects.filter(type="plugin_state_changed").order_by("timestamp", "pk")
    assert [(event.metadata["change"], event.actor_id) for event in changes] == [
        ("activated", "admin:admin"),
        ("disabled", "admin:admin"),
    ]


# --- signatures ---------------------------------------------------------------


def new_key():
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, base64.b64encode(raw_public).decode(), key_fingerprint(raw_public)


def sign(private, archive):
    digest = files_digest(files_from_zip(archive))
    return base64.b64encode(private.sign(digest.encode())).decode()


@pytest.fixture
def publisher(settings):
    private, public, fingerprint = new_key()
    settings.PLUGIN_TRUSTED_KEYS = [new_key()[1], public]
    return private, fingerprint


@pytest.mark.django_db
def test_a_signed_upload_records_the_publisher_key(api, publisher):
    private, fingerprint = publisher
    archive = plugin_zip()
    response = upload(api, archive, signature=sign(private, archive))
    assert response.status_code == 201, response.content
    assert response.json()["signed"] is True and response.json()["signedBy"] == fingerprint
    version = PluginVersion.objects.get()
    assert version.signed_by == fingerprint and version.files_digest == files_digest(files_from_zip(archive))
    assert AuditEvent.objects.get().metadata["signedBy"] == fingerprint
    assert api.get("/plugins/echo").json()["versions"][0]["signedBy"] == fingerprint


@pytest.mark.django_db
def test_bad_signatures_are_rejected(api, publisher):
    private, _ = publisher
    archive = plugin_zip()
    stranger, _, _ = new_key()
    tampered = plugin_zip(source=SOURCE + "import os\n")
    for signature, complaint in (
        (sign(stranger, archive), "not a signature of the files digest"),
        (sign(private, archive), "not a signature of the files digest"),  # sent with the tampered archive
        ("not base64!", "not base64"),
        (base64.b64encode(b"short").decode(), "is 5 bytes"),
    ):
        assert_validation_error(upload(api, tampered, signature=signature), "signature", complaint)
    assert_nothing_stored()


@pytest.mark.django_db
def test_signatures_can_be_required(api, publisher, settings):
    private, _ = publisher
    settings.PLUGIN_REQUIRE_SIGNATURE = True
    archive = plugin_zip()
    assert_validation_error(upload(api, archive), "signature", "only accepts signed plugins")
    assert_nothing_stored()
    assert upload(api, archive, signature=sign(private, archive)).status_code == 201


@pytest.mark.django_db
def test_a_signature_without_trusted_keys_cannot_be_verified(api, settings):
    settings.PLUGIN_TRUSTED_KEYS = []
    archive = plugin_zip()
    assert_validation_error(upload(api, archive, signature=sign(new_key()[0], archive)), "signature", "no trusted")


@pytest.mark.django_db
def test_install_plugin_and_plugin_digest_commands(publisher, tmp_path):
    private, fingerprint = publisher
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps(manifest()))
    (folder / "plugin.py").write_text(SOURCE)
    out = io.StringIO()
    call_command("plugin_digest", str(folder), stdout=out)
    digest = out.getvalue().strip()
    # The digest is what the README's shell pipeline gives.
    shell = subprocess.run(
        "find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum",
        shell=True, cwd=folder, capture_output=True, text=True, check=True,
    )
    assert shell.stdout.split()[0] == digest

    signature = base64.b64encode(private.sign(digest.encode())).decode()
    with pytest.raises(CommandError, match="signature: is not a signature"):
        forged = base64.b64encode(b"x" * 64).decode()
        call_command("install_plugin", str(folder), "--signature", forged, stdout=io.StringIO())
    out = io.StringIO()
    call_command("install_plugin", str(folder), "--signature", signature, stdout=out)
    assert "signed by" in out.getvalue()
    assert PluginVersion.objects.get().signed_by == fingerprint


def test_misconfigured_trusted_keys_fail_the_system_check(settings):
    from plugins.checks import check_trusted_publisher_keys

    settings.PLUGIN_TRUSTED_KEYS = ["bm90IGEga2V5"]
    assert [error.id for error in check_trusted_publisher_keys(None)] == ["plugins.E001"]
    settings.PLUGIN_TRUSTED_KEYS = []
    settings.PLUGIN_REQUIRE_SIGNATURE = True
    assert [error.id for error in check_trusted_publisher_keys(None)] == ["plugins.E002"]


@pytest.mark.django_db
def test_the_examples_upload_through_the_api(staff):
    for folder in sorted(path for path in EXAMPLES.iterdir() if (path / "plugin.json").exists()):
        files = [(path.name, path.read_text()) for path in sorted(folder.iterdir()) if path.suffix in (".py", ".json")]
        assert upload(staff, zip_of(*files)).status_code == 201
    assert {plugin["id"] for plugin in staff.get("/plugins").json()["plugins"]} == {"json-tools", "stats", "text-tools"}


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
