"""The keys every node of one deployment must share, and finding a node that
does not.

SECRET_KEY signs what one node hands another (sealed secrets of queued runs,
idempotency fingerprints, sessions) and, unless SECRETS_ENCRYPTION_KEY is
set, derives the key that encrypts organizations' stored secrets. A node
started without SECRET_KEY generates one of its own (VAR_DIR/secret_key):
alone that is right, beside other nodes it cannot read what they sealed
or stored. So each node records a fingerprint of its keys in the shared
database when it migrates (`make run` does, on every start) — the first
record stands — and `manage.py check --deploy` fails on a node whose keys
differ from the record. After a deliberate change of the keys on every
node, `manage.py shared_keys --record` replaces the record.
"""

import hashlib
import hmac
import socket

from django.conf import settings

from quotas.secrets import encryption_keys, key_id

from .models import SharedKeyFingerprint

FINGERPRINT_LABEL = b"plugin-engine shared key fingerprint"


def this_nodes_fingerprints():
    """{key name: fingerprint} of this node's keys: keyed hashes, which tell
    whether two nodes hold the same key and nothing about the key."""
    return {
        "SECRET_KEY": hmac.new(settings.SECRET_KEY.encode(), FINGERPRINT_LABEL, hashlib.sha256).hexdigest(),
        # The key new values are encrypted with; the others only decrypt.
        "SECRETS_ENCRYPTION_KEY": key_id(encryption_keys()[0]),
    }


def record_fingerprints(*, replace=False):
    """Record this node's fingerprints where none is recorded yet (or, with
    `replace`, over the recorded ones); returns the names written."""
    written = []
    for name, fingerprint in this_nodes_fingerprints().items():
        defaults = {"fingerprint": fingerprint, "recorded_by": socket.gethostname()}
        if replace:
            SharedKeyFingerprint.objects.update_or_create(name=name, defaults=defaults)
            written.append(name)
        elif SharedKeyFingerprint.objects.get_or_create(name=name, defaults=defaults)[1]:
            written.append(name)
    return written


def against_the_record():
    """[(key name, this node's fingerprint, the recorded row or None)]."""
    mine = this_nodes_fingerprints()
    recorded = {row.name: row for row in SharedKeyFingerprint.objects.filter(name__in=mine)}
    return [(name, fingerprint, recorded.get(name)) for name, fingerprint in mine.items()]


def differing_keys():
    """The records whose fingerprint differs from this node's."""
    return [row for _, fingerprint, row in against_the_record() if row is not None and row.fingerprint != fingerprint]
