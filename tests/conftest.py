"""Fixtures shared by the suite.

Integration tests run a real `manage.py qcluster` against the same SQLite
test database as the test process, and call the API in-process with DRF's
client: real views, real queue, real worker processes, real sandbox.
"""

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HOSTILE = Path(__file__).resolve().parent / "plugins"


def make_tiers():
    from quotas.models import Tier

    tiers = {}
    for name, daily, concurrent, priority in (
        ("free", 100, 1, "low"),
        ("pro", 10000, 5, "medium"),
        ("enterprise", None, 10, "high"),
    ):
        tiers[name], _ = Tier.objects.get_or_create(
            name=name, defaults={"daily_limit": daily, "concurrent_limit": concurrent, "priority": priority}
        )
    return tiers


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


def install_folder(path, owner=None):
    from plugins.archive import load_plugin_source
    from plugins.services import install_version

    manifest, files = load_plugin_source(str(path))
    return install_version(manifest, files, owner=owner, activate=True)


def install_source(slug, source, actions, *, owner=None, version="1.0.0", **manifest_extra):
    """Install a one-file plugin: `actions` maps action name -> handler name
    (or a dict of action manifest fields)."""
    from plugins.services import install_version

    manifest = {
        "name": slug,
        "version": version,
        "entrypoint": "plugin.py",
        "description": f"test plugin {slug}",
        "actions": {
            name: (spec if isinstance(spec, dict) else {"handler": spec, "params": {"type": "object"}})
            for name, spec in actions.items()
        },
        **manifest_extra,
    }
    return install_version(manifest, {"plugin.json": json.dumps(manifest), "plugin.py": source}, owner=owner, activate=True)


@pytest.fixture
def examples(db):
    return {path.name: install_folder(path) for path in sorted(EXAMPLES.iterdir()) if (path / "plugin.json").exists()}


class Cluster:
    """Real `manage.py qcluster` processes, one per priority queue."""

    def __init__(self, workers=3, lease_grace_seconds=5):
        self.workers = workers
        self.lease_grace_seconds = lease_grace_seconds
        self.processes = []
        self.sinks = []

    def start(self):
        for name in settings.PRIORITY_CLUSTERS.values():
            self.processes.append(self._start_one(name))
        return self

    @property
    def database_url(self):
        database = settings.DATABASES["default"]
        return f"sqlite:///{database.get('TEST', {}).get('NAME') or database['NAME']}"

    def kill_leftovers(self):
        """A session that died mid-way leaves its clusters writing to the test
        database this session is about to recreate."""
        import psutil

        for process in psutil.process_iter(["cmdline"]):
            try:
                if "qcluster" in " ".join(process.info["cmdline"] or []) and process.environ().get("DATABASE_URL") == self.database_url:
                    process.kill()
            except (psutil.Error, OSError):
                continue

    def _start_one(self, name):
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            Q_CLUSTER_NAME=name,
            WORKERS_HIGH=str(self.workers),
            WORKERS_MEDIUM=str(self.workers),
            WORKERS_LOW=str(self.workers),
            EXECUTION_LEASE_GRACE_SECONDS=str(self.lease_grace_seconds),
            PYTHONUNBUFFERED="1",
        )
        # Unbuffered bytes: select() must see every line as it arrives, not
        # leave the "running" line sitting in a reader's buffer.
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,
        )
        deadline = time.monotonic() + 60
        output = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                output += chunk
                if b"running." in output.lower() and b"cluster" in output.lower():
                    break
            if process.poll() is not None:
                self.stop()
                raise RuntimeError("qcluster exited:\n" + output.decode(errors="replace"))
        else:
            self.kill_tree(process)
            self.stop()
            raise RuntimeError("qcluster did not start:\n" + output.decode(errors="replace"))
        # Keep draining its output so the pipe never fills and blocks it.
        self.sinks.append(subprocess.Popen(["cat"], stdin=process.stdout, stdout=subprocess.DEVNULL))
        return process

    @staticmethod
    def kill_tree(process):
        import psutil

        try:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        process.kill()
        process.wait()

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_tree(process)
        self.processes = []

    def worker_pids(self):
        import psutil

        return [child.pid for p in self.processes for child in psutil.Process(p.pid).children(recursive=True)]


@pytest.fixture(scope="session", autouse=True)
def no_leftover_clusters():
    """Before the test database is created: no cluster of a crashed session
    may still be writing to it."""
    Cluster().kill_leftovers()


@pytest.fixture(scope="session")
def cluster(django_db_setup, django_db_blocker):
    running = Cluster().start()
    yield running
    running.stop()


@pytest.fixture
def live(cluster, transactional_db):
    """Marks a test as one that needs committed data and the running cluster."""
    return cluster


def wait_for(predicate, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
