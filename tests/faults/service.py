"""The whole service as an operator runs it (`make run`: supervisord, gunicorn,
three priority clusters) on a private VAR_DIR and port, and the processes
of it a fault test kills."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil

from tests.factories import ROOT, wait_for

# Anything that would point the service at the test process's own files or
# servers (under `make test-scale`, its Redis: authentication brakes and
# heartbeats shared with the tests).
PRIVATE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "VAR_DIR", "PROMETHEUS_MULTIPROC_DIR", "WAKEUP_DIR",
                     "SANDBOX_LOCK_DIR", "Q_CLUSTER_NAME", "PORT")

NAPPER = """
import time

def nap(params, ctx):
    time.sleep(params.get("seconds", 0))
    return {"slept": params.get("seconds", 0)}
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    def __init__(self, var_dir, *, grace_seconds=30, workers=2, **settings):
        self.var_dir = str(var_dir)
        # A wake-up socket's path must fit in 108 bytes; under pytest's long
        # tmp_path (VAR_DIR/run/wakeup/run-<uuid>.<pid>-<n>.sock) it would not,
        # and every waiting caller would fall back to polling once a second.
        self.wakeup_dir = tempfile.mkdtemp(prefix="wakeup-")
        self.settings = {name: str(value) for name, value in settings.items()}
        self.port = free_port()
        self.grace_seconds = grace_seconds
        self.workers_per_cluster = workers
        self.make = None
        self.key = None

    @property
    def env(self):
        env = {name: value for name, value in os.environ.items() if name not in PRIVATE_VARIABLES}
        env.update(
            VAR_DIR=self.var_dir, PORT=str(self.port), BIND_ADDRESS="127.0.0.1",
            SHUTDOWN_GRACE_SECONDS=str(self.grace_seconds), WEB_WORKERS="2",
            WORKERS_HIGH=str(self.workers_per_cluster), WORKERS_MEDIUM=str(self.workers_per_cluster),
            WORKERS_LOW=str(self.workers_per_cluster),
            EXECUTION_LEASE_GRACE_SECONDS="5", REAPER_INTERVAL_SECONDS="0.5", HEALTH_STALL_SECONDS="2",
            PYTHONUNBUFFERED="1", WAKEUP_DIR=self.wakeup_dir,
        )
        env.update(self.settings)
        return env

    # -- life cycle -------------------------------------------------------------

    def start(self):
        log = open(os.path.join(self.var_dir, "make-run.log"), "ab")
        self.make = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"SHUTDOWN_GRACE_SECONDS={self.grace_seconds}"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.make.poll() is not None:
                raise RuntimeError(f"make run exited ({self.make.returncode}):\n{self.log_tail()}")
            if self.ready():
                self.key = self.key or self.demo_key()
                return self
            time.sleep(0.2)
        raise RuntimeError(f"make run did not come up:\n{self.log_tail()}")

    def ready(self):
        try:
            status, body = self.get("/health")
        except OSError:
            return False
        return status == 200 and body["checks"]["cluster"]["status"] == "healthy"

    def demo_key(self):
        with open(os.path.join(self.var_dir, "make-run.log"), errors="replace") as handle:
            lines = handle.read().splitlines()
        keys = [line.strip() for line in lines if line.strip().startswith("pex_")]
        return keys[-1]

    def log_tail(self, lines=60):
        with open(os.path.join(self.var_dir, "make-run.log"), errors="replace") as handle:
            return "\n".join(handle.read().splitlines()[-lines:])

    def processes(self):
        """Every process of the service: make, supervisord and their descendants."""
        try:
            root = psutil.Process(self.make.pid)
        except psutil.NoSuchProcess:
            return []
        return [root, *root.children(recursive=True)]

    def kill_everything(self):
        for process in self.processes():
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self.make.wait(10)
        wait_for(lambda: not self.processes() and not self.port_open(), timeout=20)

    def stop(self, timeout):
        """SIGTERM to make, as an operator's one SIGTERM; how long everything took to exit."""
        started = time.monotonic()
        self.make.send_signal(signal.SIGTERM)
        self.make.wait(timeout)
        wait_for(lambda: not self.leftovers(), timeout=5)
        return time.monotonic() - started

    def make_stop(self, timeout):
        """`make stop`, as an operator's script stops it; `make run`'s exit status."""
        subprocess.run(["make", "--no-print-directory", "stop"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)
        return self.make.wait(timeout)

    def leftovers(self):
        return [p for p in psutil.process_iter(["cmdline", "environ"]) if self._is_ours(p)]

    def _is_ours(self, process):
        try:
            return (process.info["environ"] or {}).get("VAR_DIR") == self.var_dir
        except (psutil.Error, TypeError):
            return False

    def port_open(self):
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    # -- the processes a test kills ----------------------------------------------

    def program(self, name):
        """The process supervisord runs as `name` (web, cluster-high, …)."""
        supervisor = next(p for p in self.processes() if "supervisord" in " ".join(p.cmdline()))
        for child in supervisor.children():
            cmdline = " ".join(child.cmdline())
            if name == "web" and "gunicorn" in cmdline:
                return child
            if name.startswith("cluster-") and "qcluster" in cmdline:
                if child.environ().get("Q_CLUSTER_NAME") == f"executor-{name.split('-', 1)[1]}":
                    return child
        raise LookupError(name)

    def sentinel(self, priority):
        return self.program(f"cluster-{priority}").children()[0]

    def workers(self, priority):
        return [child for child in self.sentinel(priority).children() if not is_courier(child)]

    def courier(self, priority):
        """The process that sends the priority's callbacks (executions.queue.courier)."""
        return next(child for child in self.sentinel(priority).children() if is_courier(child))

    def fork_server(self, worker):
        return next(p for p in worker.children(recursive=True) if "child.forkserver" in " ".join(p.cmdline()))

    # -- talking to it ---------------------------------------------------------------

    def request(self, method, path, body=None, timeout=30, key=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path):
        return self.request("GET", path, timeout=5)

    def execute(self, plugin, action, params, key=None, **extra):
        return self.request("POST", "/execute", {"pluginId": plugin, "actionName": action, "params": params, **extra},
                            key=key)

    def prepare(self, concurrency=100):
        """Install the `napper` plugin (an idempotent nap, short or long) and let the demo
        organization hold `concurrency` runs at once."""
        # long_nap declares a timeout above LONG_RUN_MS: a long run.
        actions = {"nap": {"handler": "nap"}, "long_nap": {"handler": "nap", "timeoutMs": 60000}}
        self.install_plugin("napper", NAPPER, actions)
        self.manage("shell", "-c", "from quotas.models import Organization; "
                    f"Organization.objects.filter(slug='demo').update(concurrent_limit_override={concurrency})")
        return self

    def install_plugin(self, name, source, actions):
        manifest = {"name": name, "version": "1.0.0", "entrypoint": "plugin.py", "actions": actions}
        with open(os.path.join(self.var_dir, f"{name}.py"), "w") as handle:
            handle.write(source)
        with open(os.path.join(self.var_dir, f"{name}.json"), "w") as handle:
            json.dump(manifest, handle)
        self.manage("install_plugin", os.path.join(self.var_dir, f"{name}.py"),
                    "--manifest", os.path.join(self.var_dir, f"{name}.json"), "--activate")

    def manage(self, *args):
        """Run a management command against this service's database; its output."""
        return subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "manage.py", *args],
                              cwd=ROOT, env=self.env, check=True, capture_output=True, text=True).stdout

    # -- what the database says --------------------------------------------------------

    def query(self, sql, *args):
        """Rows of `sql` (placeholders: %s) from this service's database."""
        database_url = self.settings.get("DATABASE_URL", "")
        if database_url.startswith("postgres"):
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as connection:
                return connection.execute(sql, args).fetchall()
        connection = sqlite3.connect(f"file:{self.var_dir}/db.sqlite3?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql.replace("%s", "?"), args).fetchall()
        finally:
            connection.close()

    def statuses(self):
        return dict(self.query("SELECT status, COUNT(*) FROM executions_execution GROUP BY status"))

    def unfinished(self):
        return self.query("SELECT COUNT(*) FROM executions_execution WHERE status IN ('queued', 'running')")[0][0]


def is_courier(process):
    """A sentinel's child that sends callbacks, not a worker (it names itself)."""
    try:
        return process.name().startswith("courier")
    except psutil.NoSuchProcess:
        return False


def retried_while_shed(call, pause=0.2):
    """`call()` again while the service sheds it (503 QUEUE_FULL: more at once
    than a web process takes, or the run queue full), as a client does after
    Retry-After; the first other answer."""
    while True:
        status, body = call()
        if status != 503 or body["error"]["type"] != "QUEUE_FULL":
            return status, body
        time.sleep(pause)


class Stream:
    """Async runs sent at a steady rate from threads of their own (an open
    loop: a slow answer does not slow the stream), until stopped."""

    def __init__(self, service, rate, params, plugin="napper", action="nap", **extra):
        self.service = service
        self.interval = 1 / rate
        self.body = (plugin, action, params)
        self.extra = {"async": True, **extra}
        self.accepted = []
        self.refused = []
        self.failed = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=16)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self):
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._send)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self):
        plugin, action, params = self.body
        try:
            status, body = self.service.execute(plugin, action, params, **self.extra)
        except OSError as error:  # the web process died under this request
            self.failed.append(repr(error))
            return
        (self.accepted if status == 202 else self.refused).append((status, body))
