"""Real `manage.py qcluster` processes against the test database, for the
integration tests (the session's `cluster` fixture, and the /health test that
stops and starts one of its own)."""

import os
import select
import subprocess
import sys
import time
import urllib.parse

from django.conf import settings

from tests.factories import ROOT


def live_database_url():
    """The test database: SQLite's file, or on a server the database
    pytest-django names after DATABASE_URL's (test_<name>), on the same
    server with the same credentials."""
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database.get('TEST', {}).get('NAME') or database['NAME']}"
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    name = database.get("TEST", {}).get("NAME") or f"test_{url.path.lstrip('/')}"
    return urllib.parse.urlunsplit(url._replace(path=f"/{name}"))


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
        return live_database_url()

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
            # A fixed pool: the integration tests count on its size.
            WORKERS_MIN_HIGH=str(self.workers),
            WORKERS_MIN_MEDIUM=str(self.workers),
            WORKERS_MIN_LOW=str(self.workers),
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
