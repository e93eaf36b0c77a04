"""Fixtures shared by the suite (plain helpers are in factories.py, the
qcluster processes in cluster.py).

Integration tests run a real `manage.py qcluster` against the same test
database as the test process (SQLite's, or PostgreSQL's under `make
test-scale`), and call the API in-process with DRF's client: real views,
real queue, real worker processes, real sandbox.

Importing this file needs no Django settings (DRF is imported inside the
fixture that uses it), so the suites that run without Django
(`-p no:django`: tests/sandbox, the example plugins) load it too.
"""

import os
import subprocess

import pytest
from django.conf import settings

from tests.cluster import Cluster
from tests.factories import EXAMPLES, ROOT, install_folder, make_tiers


@pytest.fixture
def tiers(db):
    return make_tiers()


@pytest.fixture
def make_org(tiers):
    from quotas.models import Organization

    def make(slug="acme", tier="pro", **overrides):
        return Organization.objects.create(slug=slug, name=slug.title(), tier=tiers[tier], **overrides)

    return make


@pytest.fixture
def org(make_org):
    return make_org()


@pytest.fixture
def make_client():
    from rest_framework.test import APIClient

    from quotas.models import ApiKey

    def make(organization, staff=False):
        _, key = ApiKey.issue(organization, name="test", is_staff=staff)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        client.api_key = key
        return client

    return make


@pytest.fixture
def api(org, make_client):
    return make_client(org)


@pytest.fixture
def examples(db):
    return {path.name: install_folder(path) for path in sorted(EXAMPLES.iterdir()) if (path / "plugin.json").exists()}


@pytest.fixture(scope="session", autouse=True)
def shared_packages():
    """The operator's shared set the example plugins use (numpy), built from
    deploy/shared-packages.txt as `make test` builds it, for this process,
    the clusters and the services the suite starts. A SANDBOX_SHARED_PACKAGES
    of the environment wins, as it does for the service."""
    configured = os.environ.get("SANDBOX_SHARED_PACKAGES")
    if configured is None:
        subprocess.run(["make", "-s", "shared-packages"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        configured = os.environ["SANDBOX_SHARED_PACKAGES"] = str(ROOT / "var" / "shared-packages")
    if settings.configured:
        settings.SANDBOX_SHARED_PACKAGES = configured
    return configured


@pytest.fixture(scope="session", autouse=True)
def no_leftover_clusters():
    """Before the test database is created: no cluster of a crashed session
    may still be writing to it. (Without pytest-django, `-p no:django`, there
    are no settings and no test database: nothing to do.)"""
    if settings.configured:
        Cluster().kill_leftovers()


@pytest.fixture(scope="session", autouse=True)
def flush_outlasts_deadlocks():
    """On PostgreSQL the flush after a test with committed data TRUNCATEs
    every table at once while the cluster may still be writing (a run
    ending, an event of the sentinel's): the locks, taken in opposite
    orders, deadlock, and PostgreSQL makes the flush give way. Tried again,
    it simply waits its turn. (SQLite's one writer at a time never
    deadlocks.)"""
    if not settings.configured:
        yield
        return
    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def flush_again_after_deadlocks(test_case):
        for attempt in range(5):
            try:
                return flush(test_case)
            except CommandError as error:
                deadlock = getattr(error.__cause__, "__cause__", None)
                if attempt == 4 or getattr(deadlock, "sqlstate", None) != "40P01":
                    raise

    TransactionTestCase._fixture_teardown = flush_again_after_deadlocks
    yield
    TransactionTestCase._fixture_teardown = flush


@pytest.fixture(scope="session")
def cluster(django_db_setup, django_db_blocker):
    running = Cluster().start()
    yield running
    running.stop()


@pytest.fixture
def live(cluster, transactional_db):
    """Marks a test as one that needs committed data and the running cluster."""
    return cluster

@pytest.fixture(autouse=True)
def no_load_shedding(request):
    """Tests that fire requests from many threads at once measure exactness,
    not capacity: the web's shedding limit is off unless a test sets it
    (tests/core/test_load_shedding.py). Services a test starts keep theirs.
    (Nothing to do without pytest-django, as in no_leftover_clusters.)"""
    if settings.configured:
        test_settings = request.getfixturevalue("settings")
        test_settings.WEB_ACTIVE_REQUEST_LIMIT = 0
        test_settings.WEB_MAX_LAG_MS = 0
