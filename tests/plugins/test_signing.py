"""Publisher signatures on uploads: Ed25519 over the files digest, trusted
keys, the `plugin_digest` / `install_plugin --signature` commands and the
system check of the configured keys."""

import base64
import io
import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from plugins.archive import files_from_zip
from plugins.models import PluginVersion
from plugins.signing import files_digest, key_fingerprint
from tests.plugins.helpers import (
    SOURCE,
    assert_nothing_stored,
    assert_validation_error,
    manifest,
    plugin_zip,
    upload,
)


SHELL_DIGEST = """(export LC_ALL=C; find . -type f -print0 | sort -z | while IFS= read -r -d '' f; do f=${f#./};
 printf '%s %d %s\\n' "$(sha256sum < "$f" | cut -c1-64)" "${#f}" "$f"; done | sha256sum)"""


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
def test_install_plugin_and_plugin_digest_commands(publisher, tmp_path, settings):
    private, fingerprint = publisher
    folder = tmp_path / "echo"
    folder.mkdir()
    (folder / "plugin.json").write_text(json.dumps(manifest()))
    (folder / "plugin.py").write_text(SOURCE)
    (folder / "notes and thoughts").mkdir()
    (folder / "notes and thoughts" / "caf\u00e9 d'\u00e9t\u00e9.md").write_text("# \u00e9t\u00e9\n", encoding="utf-8")
    out = io.StringIO()
    call_command("plugin_digest", str(folder), stdout=out)
    digest = out.getvalue().strip()
    # The digest is what the shell pipeline of docs/plugins.md gives, names
    # with spaces, quotes and non-ASCII letters included.
    shell = subprocess.run(
        ["bash", "-c", SHELL_DIGEST], cwd=folder, capture_output=True, text=True, check=True,
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
    )
    assert shell.stdout.split()[0] == digest
    assert SHELL_DIGEST in (settings.BASE_DIR / "docs" / "plugins.md").read_text()

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
