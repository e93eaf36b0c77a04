"""Every node must share SECRET_KEY and SECRETS_ENCRYPTION_KEY: the first to
migrate records their fingerprints, and `check --deploy` fails on a node
whose keys differ."""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from observability.checks import check_keys_match_the_other_nodes
from observability.models import SharedKeyFingerprint
from observability.shared_keys import record_fingerprints, this_nodes_fingerprints
from tests.cluster import live_database_url
from tests.factories import ROOT


@pytest.fixture
def recorded(db):
    SharedKeyFingerprint.objects.all().delete()
    record_fingerprints()


def error_ids():
    return [message.id for message in check_keys_match_the_other_nodes(None)]


def test_the_nodes_record_is_a_keyed_hash_never_the_key(recorded, settings):
    stored = dict(SharedKeyFingerprint.objects.values_list("name", "fingerprint"))
    assert stored == this_nodes_fingerprints()
    assert settings.SECRET_KEY not in stored["SECRET_KEY"]
    assert error_ids() == []


def test_a_node_with_another_secret_key_fails_the_deploy_check(recorded, settings):
    settings.SECRET_KEY = "another node's own key, generated because none was set" * 2
    errors = check_keys_match_the_other_nodes(None)
    assert {e.id for e in errors} == {"observability.E001"}
    # The encryption key derives from SECRET_KEY when it is not set itself.
    assert {e.msg.split()[0] for e in errors} == {"SECRET_KEY", "SECRETS_ENCRYPTION_KEY"}


def test_the_first_record_stands_until_it_is_replaced_on_purpose(recorded, settings, capsys):
    first = this_nodes_fingerprints()
    settings.SECRET_KEY = "rotated on every node" * 3
    assert record_fingerprints() == []
    assert dict(SharedKeyFingerprint.objects.values_list("name", "fingerprint")) == first

    call_command("shared_keys", "--record")
    assert "same as recorded" in capsys.readouterr().out
    assert error_ids() == []


@pytest.mark.django_db(transaction=True)
def test_manage_py_check_deploy_fails_on_a_node_started_without_the_shared_key(tmp_path):
    SharedKeyFingerprint.objects.all().delete()
    record_fingerprints()
    env = {**os.environ, "DATABASE_URL": live_database_url(), "VAR_DIR": str(tmp_path), "SECRET_KEY": ""}
    env.pop("SECRETS_ENCRYPTION_KEY", None)
    check = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode != 0
    assert "observability.E001" in check.stderr and "SECRET_KEY on this node differs" in check.stderr
