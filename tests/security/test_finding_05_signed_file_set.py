"""Finding 5: the files digest a publisher signs was the sha256 of a
`sha256sum` listing ("<hash>  <path>\\n" per file), and a file name could
hold a newline. One name could then carry the lines of the files after it:
whoever holds a signed plugin could upload it with files left out (or
renamed) under the publisher's signature, still shown as signed by them.
"""

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from plugins.models import PluginVersion
from plugins.signing import files_digest
from tests.plugins.helpers import SOURCE, assert_nothing_stored, assert_validation_error, manifest, upload, zip_of

# As the publisher signed it: policy.py sorts last, right after plugin.txt.
SIGNED = {
    "plugin.json": json.dumps(manifest()),
    "plugin.py": SOURCE,
    "plugin.txt": "# Release notes: 1.0.0\n",
    "policy.py": "ALLOWED_HOSTS = ['api.example.com']\n",
}


def forged_without_policy():
    """The signed files with policy.py gone: plugin.txt's name swallows its line."""
    policy_hash = hashlib.sha256(SIGNED["policy.py"].encode()).hexdigest()
    files = {path: text for path, text in SIGNED.items() if path not in ("plugin.txt", "policy.py")}
    files[f"plugin.txt\n{policy_hash}  policy.py"] = SIGNED["plugin.txt"]
    return files


@pytest.fixture
def publisher(settings):
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    settings.PLUGIN_TRUSTED_KEYS = [base64.b64encode(public).decode()]
    settings.PLUGIN_REQUIRE_SIGNATURE = True
    return private


def signature_of(private, files):
    return base64.b64encode(private.sign(files_digest(files).encode())).decode()


def test_no_other_set_of_files_has_the_signed_digest():
    assert files_digest(forged_without_policy()) != files_digest(SIGNED)


@pytest.mark.django_db
def test_a_signed_plugin_cannot_lose_a_file_under_its_signature(api, publisher):
    signature = signature_of(publisher, SIGNED)
    forged = zip_of(*forged_without_policy().items())
    assert_validation_error(upload(api, forged, signature=signature), "archive", "printable characters")
    assert_nothing_stored()

    # The publisher's own upload is accepted as signed.
    response = upload(api, zip_of(*SIGNED.items()), signature=signature)
    assert response.status_code == 201, response.content
    assert response.json()["signed"] is True
    assert PluginVersion.objects.get().files_digest == files_digest(SIGNED)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["a\rb.py", "tab\tbed.py", "\x1b[8mhidden.py", "line\u2028break.py",
                                  "evil\u202etxt.py", "nbsp\u00a0name.py", "zero\u200bwidth.py"])
def test_unprintable_names_are_refused(api, name):
    archive = zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), (name, "x = 1\n"))
    assert_validation_error(upload(api, archive), "archive", "printable characters")
    assert_nothing_stored()
