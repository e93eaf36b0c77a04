"""Publisher signatures on plugin versions (Ed25519).

What a publisher signs is the *files digest* of the plugin as they have it,
not the archive this service stores: the stored archive is rebuilt here (with
the manifest's defaults filled in), so its bytes are not something a
publisher can predict, while the files digest depends only on the files:

    listing = for each file, sorted by path (bytewise, UTF-8):
              "<sha256 hex of its bytes> <length of its path in bytes> <path>\\n"
    digest  = sha256 hex of the listing

The path's length makes the listing unambiguous whatever a path holds: no
name can pass for the end of one line and the start of the next (the
`sha256sum` listing this replaced could be forged that way by a file name
holding a newline, and such names are refused by plugins.archive too).
In bash, in a folder holding the plugin's files and nothing else:

    (export LC_ALL=C; find . -type f -print0 | sort -z | while IFS= read -r -d '' f; do f=${f#./};
     printf '%s %d %s\\n' "$(sha256sum < "$f" | cut -c1-64)" "${#f}" "$f"; done | sha256sum)

or `manage.py plugin_digest PATH`. The signature is Ed25519 over the 64
ASCII characters of that hex digest, sent base64-encoded. Files are UTF-8
text, hashed without a leading byte-order mark (it is dropped when the files
are read), and vendored wheels, hashed as they are. Signatures are verified once, at upload.
"""

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .manifest import ManifestError

SIGNATURE_BYTES = 64


def files_digest(files):
    """The digest a publisher signs, of a {relative path: text or wheel bytes} mapping."""
    listing = "".join(
        f"{hashlib.sha256(_bytes(files[path])).hexdigest()} {len(path.encode())} {path}\n" for path in sorted(files)
    )
    return hashlib.sha256(listing.encode()).hexdigest()


def _bytes(content):
    return content if isinstance(content, bytes) else content.encode()


def key_fingerprint(raw_public_key):
    """How a trusted key is named on the versions it signed: sha256 hex of its 32 raw bytes."""
    return hashlib.sha256(raw_public_key).hexdigest()


def trusted_keys():
    """{fingerprint: public key} of PLUGIN_TRUSTED_KEYS; ImproperlyConfigured for a malformed entry."""
    keys = {}
    for position, encoded in enumerate(settings.PLUGIN_TRUSTED_KEYS, start=1):
        try:
            raw = base64.b64decode(encoded, validate=True)
            keys[key_fingerprint(raw)] = Ed25519PublicKey.from_public_bytes(raw)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(
                f"PLUGIN_TRUSTED_KEYS entry {position} is not a base64-encoded raw (32-byte) Ed25519 public key"
            ) from None
    return keys


def verify_signature(digest, signature):
    """The fingerprint of the trusted key whose signature of `digest` this is.

    Returns "" for an unsigned upload where signatures are optional; raises
    ManifestError (field "signature") for everything else that is not a
    valid signature by a trusted key.
    """
    if not signature:
        if settings.PLUGIN_REQUIRE_SIGNATURE:
            raise ManifestError.single(
                "signature",
                f"this service only accepts signed plugins: sign the files digest {digest} "
                "with a trusted publisher key and send the signature",
            )
        return ""
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError.single("signature", "is not base64") from None
    if len(raw_signature) != SIGNATURE_BYTES:
        raise ManifestError.single(
            "signature", f"is {len(raw_signature)} bytes; an Ed25519 signature is {SIGNATURE_BYTES}"
        )
    keys = trusted_keys()
    if not keys:
        raise ManifestError.single(
            "signature", "no trusted publisher keys are configured (PLUGIN_TRUSTED_KEYS), so it cannot be verified"
        )
    for fingerprint, key in keys.items():
        try:
            key.verify(raw_signature, digest.encode("ascii"))
        except InvalidSignature:
            continue
        return fingerprint
    raise ManifestError.single(
        "signature", f"is not a signature of the files digest {digest} by any trusted publisher key"
    )
