"""Load scenarios against the whole service, started as an operator starts it
(`make run`: supervisord, gunicorn, the three priority clusters), driven by
an open-loop client. Prints figures (a table per scenario) and writes a JSON
report and an SVG chart per scenario; it asserts nothing.

What it measures, per scenario: requests, ok answers, refusals by status and
error type, errors, client-side failures, throughput, latency percentiles
(of successes and of every answer), the whole service's CPU per completed
run and the cores it used, and the client's own CPU and lateness.

How:
- Open loop: request i of a stream is due at t0 + i/rate whatever the answers
  do, and its latency counts from that due time, so every queue on the way
  (the client's own lateness, its connection pool, the listen backlog,
  gunicorn's, the run queue) is in it. The client is asyncio with raw
  HTTP/1.1 keep-alive connections (a pool that grows as needed, up to --cap),
  no HTTP library; its own CPU (getrusage) and lateness are reported.
- Whole-service CPU: the service is started by a shell that first joins a
  cgroup2 group of its own (/sys/fs/cgroup/unified/pex-load-…) and then execs
  make, so make, supervisord, gunicorn, the clusters, their fork-servers and
  every sandboxed child are counted in its cpu.stat usage_usec, read before
  and after each phase. Without root or cgroup2 only wall figures are given.
- Side task: every 5 s GET /stats (staff key: pool size, active runs) and
  GET /metrics (worker_pool_queue_size); every second a read-only look at the run
  queue in the service's SQLite database (which answers even when the web
  does not); every 0.5 s the cgroup's CPU, the client's CPU and the host's
  memory.
- After each phase the bench waits until the service is idle again (no run
  queued or running, /health fast, the cgroup's CPU near its idle level),
  and reports that drain time and the CPU spent in it, an approximate split
  of the CPU by process (web, clusters, sandbox), the exceptions the service
  logged, and any circuit breaker left open.

Scenarios (all by default; --quick gives seconds-long versions):
  sustained   sync bench.noop (params differ every call) at --rate (100/s) for --duration (600 s; quick 10 s)
  overload    sync bench.noop at --overload-rate (300/s) for 60 s (quick 5 s): refusals, their speed,
              answers within timeout + 1 s
  burst       0 -> --burst-rate (500/s) for 10 s (quick 3 s), then --tail-rate (20/s) for --tail-duration
              (10 s): time until the p99 of a sliding 1 s window is back under 250 ms
  long        --long-callers (200; quick 20) sync bench.sleep of --long-seconds (30; quick 3) with
              timeout seconds + 5 s, while bench.noop runs at --trivial-rate (20/s) and /health is polled
              every 0.5 s
  memory      bench.alloc of --memory-mb (400) MiB by --memory-concurrency (10) closed-loop callers for
              60 s (quick 10 s); host memory sampled every 0.5 s
  cache-hits  bench.echo with fixed params (warmed first) at --cache-rate (1000/s) for 20 s (quick 5 s)
--rate and --duration, when given, override the main stream's rate and length of every selected scenario
(for long, --duration is the sleep's length; memory has no rate).

Commands:
    .venv/bin/python bench/load.py --quick                       # every scenario, a few seconds each
    .venv/bin/python bench/load.py --scenario sustained --rate 100 --duration 60
    .venv/bin/python bench/load.py --scenario overload --overload-rate 300
    .venv/bin/python bench/load.py --scenario burst --scenario long --out /tmp/load-results
The service's own settings come from the environment as for `make run`
(WORKERS_HIGH/WORKERS_MEDIUM/WORKERS_LOW, WEB_WORKERS, WEB_THREADS, QUEUE_LIMIT, …);
it runs on 127.0.0.1, a free port and a private temporary VAR_DIR. Reports go
to --out (default: a new temporary folder, printed).
"""

import argparse
import asyncio
import datetime as dt
import errno
import heapq
import itertools
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import load_chart
import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
CGROUP_BASE = "/sys/fs/cgroup/unified"
# Anything that would point the service at another instance's files or servers.
PRIVATE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "WAKEUP_DIR", "SANDBOX_LOCK_DIR",
                     "Q_CLUSTER_NAME", "VAR_DIR", "PORT", "BIND_ADDRESS")
ORG = "bench-load"
# Answers that refuse a run before it exists (docs/api.md#errors); other non-200 answers are errors.
REFUSAL_TYPES = {"QUOTA_EXCEEDED", "CONCURRENCY_LIMIT", "RATE_LIMITED", "QUEUE_FULL", "SHUTTING_DOWN",
                 "CIRCUIT_OPEN", "SANDBOX_UNAVAILABLE"}
# The last line of a Python traceback, e.g. "ValueError: filedescriptor out of range in select()".
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning)(?::.*)?$")
SCENARIOS = ("sustained", "overload", "burst", "long", "memory", "cache-hits")

PLUGIN_SOURCE = '''\
import time


def noop(params, ctx):
    return {"ok": True}


def echo(params, ctx):
    return params


def sleep(params, ctx):
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}


def alloc(params, ctx):
    size = int(params["mb"]) * 1024 * 1024
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    return {"length": len(block)}
'''

PLUGIN_MANIFEST = {
    "name": "bench", "version": "1.0.0", "entrypoint": "plugin.py",
    "description": "Actions for bench/load.py.",
    "actions": {
        "noop": {"handler": "noop", "cacheable": False},
        "echo": {"handler": "echo", "cacheable": True},
        # A long action, as its manifest says: above LONG_RUN_MS, so its runs
        # never take the priority's last worker nor its trivial calls' queue.
        "sleep": {"handler": "sleep", "timeoutMs": 60000, "params": {"type": "object", "required": ["seconds"],
                                                 "properties": {"seconds": {"type": "number", "minimum": 0}}}},
        "alloc": {"handler": "alloc", "params": {"type": "object", "required": ["mb"],
                                                 "properties": {"mb": {"type": "integer", "minimum": 0}}}},
    },
    "limits": {"memoryMb": 512},
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_busy_seconds():
    """CPU seconds the whole host has spent busy (every process and the kernel), since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "guest", 0.0) - getattr(
        times, "guest_nice", 0.0)


def client_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- whole-service CPU --------------------------------------------------------------------------


class CpuCgroup:
    """A cgroup2 group of our own: the service's shell joins it before exec'ing make."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def create(cls):
        """(CpuCgroup, None) or (None, why not)."""
        if os.geteuid() != 0:
            return None, "not root"
        if not os.path.exists(os.path.join(CGROUP_BASE, "cgroup.procs")):
            return None, f"no cgroup2 hierarchy at {CGROUP_BASE}"
        path = os.path.join(CGROUP_BASE, f"pex-load-{os.getpid()}-{os.urandom(3).hex()}")
        try:
            os.mkdir(path)
        except OSError as error:
            return None, f"cannot create {path}: {error}"
        group = cls(path)
        if group.usage_usec() is None:
            group.remove()
            return None, f"{path}/cpu.stat has no usage_usec"
        return group, None

    @property
    def procs_file(self):
        return os.path.join(self.path, "cgroup.procs")

    def usage_usec(self):
        try:
            with open(os.path.join(self.path, "cpu.stat")) as handle:
                for line in handle:
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value)
        except OSError:
            return None
        return None

    def pids(self):
        try:
            with open(self.procs_file) as handle:
                return [int(line) for line in handle.read().split()]
        except OSError:
            return []

    def kill_all(self):
        """SIGKILL every process still in the group (they are all the service's)."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def remove(self):
        deadline = time.monotonic() + 15
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.pids():
            print(f"cgroup {self.path} still holds {self.pids()}: killing them", flush=True)
            self.kill_all()
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.1)
        print(f"could not remove cgroup {self.path}", flush=True)
        return False


def process_role(process):
    """Which part of the service a process is, from its command line (and its cluster's name)."""
    command = " ".join(process.cmdline())
    if "child.forkserver" in command:
        return "sandbox"  # fork-servers and the sandboxed children they fork
    if "gunicorn" in command:
        return "web"
    if "qcluster" in command:
        return "cluster-" + process.environ().get("Q_CLUSTER_NAME", "?").rsplit("-", 1)[-1]
    if "supervisord" in command or "record_process_events" in command:
        return "supervisord"
    return "other"


def cpu_by_process(cgroup):
    """{(pid, start time): (role, CPU seconds incl. reaped children, parent pid)} of every process in the
    cgroup. A process's reaped children count in it (exited sandbox children in their fork-server, recycled
    workers in their cluster), so little goes unattributed."""
    found = {}
    for pid in cgroup.pids() if cgroup else ():
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                found[(pid, process.create_time())] = (
                    process_role(process), times.user + times.system + times.children_user + times.children_system,
                    process.ppid())
        except (psutil.Error, OSError):
            continue
    return found


def cpu_breakdown(before, after, total_ms):
    """Approximate CPU ms per role between two cpu_by_process() snapshots. A process gone by the end whose
    parent is still there was reaped by it: the parent's gain holds its whole life, so what it had used
    before is taken off. What no live process accounts for (e.g. children orphaned when a recycled worker
    exited) is `unattributed`."""
    roles = {}
    for key, (role, seconds, _) in after.items():
        roles[role] = roles.get(role, 0.0) + (seconds - before.get(key, (role, 0.0, 0))[1]) * 1000
    after_pids = {pid: role for (pid, _), (role, _, _) in after.items()}
    for key, (role, seconds, ppid) in before.items():
        if key not in after and ppid in after_pids:
            parent_role = after_pids[ppid]
            roles[parent_role] = roles.get(parent_role, 0.0) - seconds * 1000
    breakdown = {role: round(ms) for role, ms in sorted(roles.items(), key=lambda pair: -pair[1])}
    if total_ms is not None:
        breakdown["unattributed"] = round(total_ms - sum(roles.values()))
    return breakdown


# --- the service --------------------------------------------------------------------------------


class Service:
    def __init__(self, var_dir, cgroup):
        self.var_dir = var_dir
        self.cgroup = cgroup
        self.port = free_port()
        self.make = None
        self.key = None
        self.staff_key = None
        # /metrics names every organization's plugins: the service refuses it without a token.
        self.metrics_token = os.environ.get("METRICS_TOKEN") or secrets.token_urlsafe(24)
        self.log_path = os.path.join(var_dir, "make-run.log")
        self.db_path = os.path.join(var_dir, "db.sqlite3")
        self._tree = []

    @property
    def env(self):
        env = {name: value for name, value in os.environ.items() if name not in PRIVATE_VARIABLES}
        env.update(VAR_DIR=self.var_dir, PORT=str(self.port), BIND_ADDRESS="127.0.0.1", PYTHONUNBUFFERED="1",
                   METRICS_TOKEN=self.metrics_token)
        return env

    def start(self, timeout=240):
        log = open(self.log_path, "ab")
        if self.cgroup:
            argv = ["/bin/sh", "-c", 'echo $$ > "$1" && exec make --no-print-directory run', "sh",
                    self.cgroup.procs_file]
        else:
            argv = ["make", "--no-print-directory", "run"]
        self.make = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.make.poll() is not None:
                raise RuntimeError(f"make run exited ({self.make.returncode}):\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"make run did not come up in {timeout} s:\n{self.log_tail()}")

    def ready(self):
        try:
            status, body = self.request("GET", "/health", timeout=5)
        except (OSError, ValueError):
            return False
        return status == 200 and body["checks"]["cluster"]["status"] == "healthy"

    def log_positions(self):
        paths = (self.log_path, os.path.join(self.var_dir, "log", "supervisord.log"))
        return {path: os.path.getsize(path) if os.path.exists(path) else 0 for path in paths}

    def log_events(self, positions):
        """What the service logged since `positions`: exception lines (of tracebacks) counted by text, and
        supervisord's notes of processes that exited."""
        exceptions, exits = {}, {}
        for path, offset in positions.items():
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    text = handle.read().decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                if path == self.log_path:
                    match = EXCEPTION_LINE.match(line)
                    if match:
                        exceptions[match.group(0)[:200]] = exceptions.get(match.group(0)[:200], 0) + 1
                elif " exited: " in line:
                    note = line.split(" exited: ", 1)[1]
                    note = re.sub(r"\(pid \d+\)", "", note)
                    exits[note] = exits.get(note, 0) + 1
        return {"exceptions": exceptions, "process_exits": exits}

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as handle:
                return "\n".join(handle.read().splitlines()[-lines:])
        except OSError:
            return ""

    def processes(self):
        if self.cgroup:
            found = []
            for pid in self.cgroup.pids():
                try:
                    found.append(psutil.Process(pid))
                except psutil.NoSuchProcess:
                    pass
            return found
        try:
            root = psutil.Process(self.make.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout=90):
        """One SIGTERM to make (everything drains); after `timeout` s, SIGKILL to the process group and
        to whatever is left in the cgroup. Returns the seconds it took."""
        if self.make is None:
            return 0.0
        started = time.monotonic()
        if self.make.poll() is None:
            self._tree = self.processes()
            try:
                self.make.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.make.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"make did not exit within {timeout} s: killing its process group", flush=True)
                try:
                    os.killpg(self.make.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.make.wait(10)
        # supervisord's programs run in process groups of their own: anything left is killed here.
        if self.cgroup:
            deadline = time.monotonic() + 10
            while self.cgroup.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.cgroup.pids():
                print(f"left after make exited: {self.cgroup.pids()}: killing them", flush=True)
                self.cgroup.kill_all()
        else:
            for process in self._tree:
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
        return time.monotonic() - started

    # -- set-up, through manage.py with the service's environment ------------------------------

    def manage(self, *args):
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def prepare(self):
        source = os.path.join(self.var_dir, "bench_plugin.py")
        manifest = os.path.join(self.var_dir, "bench_plugin.json")
        with open(source, "w") as handle:
            handle.write(PLUGIN_SOURCE)
        with open(manifest, "w") as handle:
            json.dump(PLUGIN_MANIFEST, handle, indent=1)
        self.manage("install_plugin", source, "--manifest", manifest, "--activate")
        self.manage("create_org", ORG, "--tier", "enterprise", "--name", "Load bench")
        self.manage("shell", "-c", "from quotas.models import Organization; "
                    f"Organization.objects.filter(slug={ORG!r}).update(concurrent_limit_override=10000)")
        self.key = self.manage("create_api_key", ORG, "--name", "load").strip().splitlines()[-1]
        self.staff_key = self.manage("create_api_key", ORG, "--name", "stats", "--staff").strip().splitlines()[-1]

    # -- plain blocking calls, outside the measured phases ------------------------------------------

    def request(self, method, path, body=None, timeout=60, key=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def execute(self, action, params, timeout_ms=30000):
        return self.request("POST", "/execute", {"pluginId": "bench", "actionName": action, "params": params,
                                                 "timeout": timeout_ms})

    # -- the run queue, read directly (the web may be too busy to say) --------------------------------

    def _query(self, sql):
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def db_active(self):
        rows = self._query("SELECT status, COUNT(*) FROM executions_execution "
                           "WHERE status IN ('queued', 'running') GROUP BY status")
        counts = dict(rows)
        return counts.get("queued", 0), counts.get("running", 0)

    def db_counts(self):
        """{"status[/cache_hit]": n} of every execution."""
        rows = self._query("SELECT status, cache_hit, COUNT(*) FROM executions_execution GROUP BY status, cache_hit")
        return {f"{status}{'/cache_hit' if hit else ''}": n for status, hit, n in rows}

    def db_errors(self, since_iso):
        rows = self._query("SELECT error_type, COUNT(*) FROM executions_execution "
                           f"WHERE queued_at >= '{since_iso}' AND error_type != '' GROUP BY error_type")
        return dict(rows)


# --- the open-loop HTTP/1.1 client ----------------------------------------------------------------


class ServerClosed(Exception):
    """The connection ended before any byte of an answer."""


async def read_response(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            raise ServerClosed() from None
        raise
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = await reader.read()
        keep = False
    return int(status), headers, body, keep


class HttpPool:
    """Keep-alive connections to 127.0.0.1:port, opened as needed up to `cap` at once. A request
    waiting for a connection waits on `slots` (that wait is in its latency)."""

    def __init__(self, port, cap, idle_seconds=1.5):
        self.port = port
        self.slots = asyncio.Semaphore(cap)
        self.idle = []
        self.idle_seconds = idle_seconds  # gunicorn closes a keep-alive connection idle 2 s
        self.opened = 0
        self.open = 0
        self.max_open = 0
        self.stale_retries = 0

    async def _connection(self, fresh=False):
        now = time.monotonic()
        while self.idle and not fresh:
            reader, writer, used = self.idle.pop()
            if now - used < self.idle_seconds and not reader.at_eof():
                return reader, writer, True
            self._close(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        return reader, writer, False

    def _close(self, writer):
        self.open -= 1
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - a transport already gone
            pass

    async def request(self, data, on_sent=None):
        async with self.slots:
            for attempt in range(2):
                reader, writer, reused = await self._connection(fresh=attempt > 0)
                answer = None
                try:
                    writer.write(data)
                    if on_sent:
                        on_sent()
                    answer = await read_response(reader)
                except (ServerClosed, ConnectionResetError, BrokenPipeError):
                    # A kept-alive connection the server closed as we reused it: once more on a new one
                    # (counted in stale_retries).
                    if reused and attempt == 0:
                        self.stale_retries += 1
                        continue
                    raise
                finally:
                    if answer is not None and answer[3]:
                        self.idle.append((reader, writer, time.monotonic()))
                    else:
                        self._close(writer)
                return answer[:3]

    def close(self):
        while self.idle:
            self._close(self.idle.pop()[1])


class Record:
    __slots__ = ("kind", "sched", "budget", "start_lag", "sent", "done", "status", "etype", "retry_after", "fail",
                 "cache_hit", "fallback", "message")

    def __init__(self, kind, sched, budget):
        self.kind = kind
        self.sched = sched
        self.budget = budget
        self.start_lag = self.sent = self.done = None
        self.status = self.etype = self.fail = self.fallback = self.message = None
        self.retry_after = False
        self.cache_hit = None

    @property
    def latency(self):
        return self.done - self.sched

    @property
    def ok(self):
        return self.status == 200

    @property
    def refused(self):
        return self.status is not None and self.etype in REFUSAL_TYPES

    @property
    def error(self):
        return self.status is not None and self.status != 200 and self.etype not in REFUSAL_TYPES


class Stream:
    """`rate` requests a second for `duration` seconds from `start`; request(i) gives
    (method, path, payload bytes or None, key, client budget in seconds)."""

    def __init__(self, kind, rate, duration, request, start=0.0):
        self.kind = kind
        self.rate = rate
        self.start = start
        self.request = request
        self.count = max(1, int(round(rate * duration))) if rate > 0 and duration > 0 else 0

    def schedule(self, order):
        for i in range(self.count):
            yield (self.start + i / self.rate, order, i, self)


class Load:
    """The client of one phase: every request's record, on a clock starting at the phase's t0."""

    def __init__(self, port, cap):
        self.loop = asyncio.get_running_loop()
        self.port = port
        self.pool = HttpPool(port, cap)
        self.records = []
        self.t0 = self.loop.time()

    def now(self):
        return self.loop.time() - self.t0

    def head(self, method, path, key, payload):
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        if key:
            lines.append(f"Authorization: Bearer {key}")
        if payload is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def fire(self, kind, sched, method, path, payload, key, budget):
        record = Record(kind, sched, budget)
        record.start_lag = self.now() - sched
        data = self.head(method, path, key, payload) + (payload or b"")

        def sent():
            record.sent = self.now()

        try:
            async with asyncio.timeout_at(self.t0 + sched + budget):
                status, headers, body = await self.pool.request(data, sent)
        except TimeoutError:
            record.fail = "timeout"
        except ConnectionRefusedError:
            record.fail = "connection refused"
        except ConnectionResetError:
            record.fail = "connection reset"
        except (ServerClosed, asyncio.IncompleteReadError, BrokenPipeError, ConnectionAbortedError):
            record.fail = "connection closed"
        except OSError as error:
            record.fail = f"{type(error).__name__} {errno.errorcode.get(error.errno, error.errno)}"
        else:
            record.status = status
            record.retry_after = "retry-after" in headers
            try:
                answer = json.loads(body) if body else None
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                if answer.get("success") is False:
                    record.etype = (answer.get("error") or {}).get("type")
                    record.message = str((answer.get("error") or {}).get("message", ""))[:300]
                record.cache_hit = answer.get("cacheHit")
                record.fallback = answer.get("fallback")
            if status != 200 and not record.etype:
                record.etype = f"HTTP_{status}"
        record.done = self.now()
        self.records.append(record)
        return record

    async def open_loop(self, streams):
        """Send every stream's requests at their due times, without waiting for answers; then wait for
        every answer (or its failure)."""
        schedule = heapq.merge(*(stream.schedule(order) for order, stream in enumerate(streams)))
        tasks = []
        upcoming = next(schedule, None)
        while upcoming is not None:
            now = self.now()
            while upcoming is not None and upcoming[0] <= now:
                due, _, index, stream = upcoming
                tasks.append(asyncio.ensure_future(self.fire(stream.kind, due, *stream.request(index))))
                upcoming = next(schedule, None)
            if upcoming is not None:
                await asyncio.sleep(max(0.0, upcoming[0] - self.now()))
        await asyncio.gather(*tasks)

    async def closed_loop(self, kind, callers, duration, request):
        """`callers` callers, each sending its next request when its previous one is answered."""
        end = self.now() + duration
        counter = itertools.count()

        async def caller():
            while self.now() < end:
                await self.fire(kind, self.now(), *request(next(counter)))

        await asyncio.gather(*(caller() for _ in range(callers)))


def execute_payload(action, params, timeout_ms):
    return json.dumps({"pluginId": "bench", "actionName": action, "params": params, "timeout": timeout_ms},
                      separators=(",", ":")).encode()


# --- the side task ------------------------------------------------------------------------------------

SERVICE_SAMPLE_SECONDS = 5
METRIC_LINE = re.compile(r'^(worker_pool_size|worker_pool_queue_size)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$', re.M)


class Sampler:
    def __init__(self, ctx, load):
        self.ctx = ctx
        self.load = load
        self.pool = HttpPool(ctx.service.port, 4)
        self.service = []  # every second: what the database says; every 5 s also /stats and /metrics
        self.host = []  # every 0.5 s: cgroup CPU, client CPU, host memory
        self.tasks = []

    def start(self):
        self.tasks = [asyncio.ensure_future(self._service_loop()), asyncio.ensure_future(self._host_loop())]

    async def stop(self):
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.pool.close()

    async def _get(self, path, key=None, timeout=2.0):
        head = self.load.head("GET", path, key, None)
        started = self.load.now()
        try:
            async with asyncio.timeout(timeout):
                status, _, body = await self.pool.request(head)
        except (OSError, ServerClosed, asyncio.IncompleteReadError):
            return None, None, self.load.now() - started
        return status, body, self.load.now() - started

    async def _stats(self, sample):
        status, body, took = await self._get("/stats", self.ctx.service.staff_key)
        sample["stats_ms"] = round(took * 1000, 1)
        if status == 200:
            stats = json.loads(body)
            sample["pool_total"] = stats["workers"]["total"]
            sample["pool_active"] = stats["workers"]["active"]
            sample["stats_queue"] = stats["queue"]["size"]

    async def _metrics(self, sample):
        status, body, took = await self._get("/metrics", self.ctx.service.metrics_token)
        sample["metrics_ms"] = round(took * 1000, 1)
        if status == 200:
            for name, labels, value in METRIC_LINE.findall(body.decode("utf-8", "replace")):
                if name == "worker_pool_queue_size":
                    sample["queue"] = float(value)
                elif 'state="total"' in (labels or ""):
                    sample["metrics_pool_total"] = float(value)

    async def _db(self, sample):
        try:
            sample["db_queued"], sample["db_running"] = await asyncio.to_thread(self.ctx.service.db_active)
        except sqlite3.Error:
            pass

    async def _service_loop(self):
        for tick in itertools.count():
            started = self.load.now()
            sample = {"t": round(started, 3)}
            # /stats and /metrics every SERVICE_SAMPLE_SECONDS (their cost grows with the database and the
            # metrics files, and is the service's); the read-only look at the queue every second.
            looks = [self._db(sample)]
            if tick % SERVICE_SAMPLE_SECONDS == 0:
                looks += [self._stats(sample), self._metrics(sample)]
            await asyncio.gather(*looks)
            self.service.append(sample)
            await asyncio.sleep(max(0.05, started + 1.0 - self.load.now()))

    async def _host_loop(self):
        while True:
            started = self.load.now()
            memory = psutil.virtual_memory()
            self.host.append({"t": round(started, 3), "cgroup_usec": self.ctx.cpu_usec(),
                              "client_cpu": client_cpu_seconds(), "available": memory.available,
                              "swap_used": psutil.swap_memory().used})
            await asyncio.sleep(max(0.05, started + 0.5 - self.load.now()))


# --- figures ----------------------------------------------------------------------------------------------


def pct(values, q):
    """Nearest-rank q-th percentile of `values` (0 < q <= 100), or None."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms_stats(seconds):
    if not seconds:
        return None
    return {"p50": round(pct(seconds, 50) * 1000, 1), "p95": round(pct(seconds, 95) * 1000, 1),
            "p99": round(pct(seconds, 99) * 1000, 1), "max": round(max(seconds) * 1000, 1), "n": len(seconds)}


def tally(items):
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda pair: -pair[1]))


def stream_figures(records):
    answers = [r for r in records if r.status is not None]
    ok = [r for r in answers if r.ok]
    refused = [r for r in answers if r.refused]
    errors = [r for r in answers if r.error]
    failures = [r for r in records if r.fail]
    first = min((r.sched for r in records), default=0.0)
    last_ok = max((r.done for r in ok), default=first)
    span = max(last_ok - first, 1e-9)
    sent_lags = [r.sent - r.sched for r in records if r.sent is not None]
    return {
        "requests": len(records),
        "answered": len(answers),
        "ok": len(ok),
        "refused": tally(f"{r.status} {r.etype}" for r in refused),
        "errors": tally(f"{r.status} {r.etype}" for r in errors),
        "client_failures": tally(r.fail for r in failures),
        "retry_after_headers": sum(1 for r in answers if r.retry_after),
        "refused_without_retry_after": tally(f"{r.status} {r.etype}" for r in refused if not r.retry_after),
        "fallback_answers": sum(1 for r in ok if r.fallback),
        "cache_hits": sum(1 for r in ok if r.cache_hit),
        "throughput_ok_per_s": round(len(ok) / span, 2) if ok else 0.0,
        "latency_ok_ms": ms_stats([r.latency for r in ok]),
        "latency_answers_ms": ms_stats([r.latency for r in answers]),
        "latency_refused_ms": ms_stats([r.latency for r in refused]),
        "latency_failures_ms": ms_stats([r.latency for r in failures]),
        "client_lateness_ms": ms_stats([r.start_lag for r in records]),
        "send_delay_ms": ms_stats(sent_lags),
        "error_messages": first_messages(refused + errors),
    }


def first_messages(records, per_type=3):
    """Up to `per_type` distinct error messages per error type."""
    messages = {}
    for r in records:
        seen = messages.setdefault(r.etype, [])
        if r.message and r.message not in seen and len(seen) < per_type:
            seen.append(r.message)
    return messages


def per_second(records, kinds, end):
    """Per 1 s bucket: sent (by due time), ok / non-ok answers / client failures (by completion time),
    and latency percentiles of the answers by due time, per kind."""
    n = int(math.ceil(end)) + 1
    figures = {"t": list(range(n)), "sent": [0] * n, "ok": [0] * n, "not_ok": [0] * n, "failed": [0] * n,
               "latency": {}}
    buckets = {kind: [[] for _ in range(n)] for kind in kinds}
    for r in records:
        figures["sent"][min(n - 1, int(r.sched))] += 1
        done = min(n - 1, int(r.done))
        if r.fail:
            figures["failed"][done] += 1
        elif r.ok:
            figures["ok"][done] += 1
        else:
            figures["not_ok"][done] += 1
        if r.status is not None and r.kind in buckets:
            buckets[r.kind][min(n - 1, int(r.sched))].append(r.latency)
    for kind, per in buckets.items():
        figures["latency"][kind] = {q: [round(pct(b, q) * 1000, 1) if b else None for b in per] for q in (50, 95, 99)}
    return figures


def host_series(host_samples, end):
    """Per 1 s bucket: service cores (cgroup), client cores, host available memory, swap used."""
    n = int(math.ceil(end)) + 1
    service, client = [None] * n, [None] * n
    available, swap = [None] * n, [None] * n
    for before, after in zip(host_samples, host_samples[1:]):
        dt_ = after["t"] - before["t"]
        if dt_ <= 0:
            continue
        bucket = min(n - 1, int(after["t"]))
        if before["cgroup_usec"] is not None and after["cgroup_usec"] is not None:
            service[bucket] = round((after["cgroup_usec"] - before["cgroup_usec"]) / 1e6 / dt_, 3)
        client[bucket] = round((after["client_cpu"] - before["client_cpu"]) / dt_, 3)
    for sample in host_samples:
        bucket = min(n - 1, int(sample["t"]))
        available[bucket] = round(sample["available"] / 2**30, 3) if available[bucket] is None else min(
            available[bucket], round(sample["available"] / 2**30, 3))
        swap[bucket] = round(sample["swap_used"] / 2**20, 1)
    return {"service_cores": service, "client_cores": client, "available_gib": available, "swap_used_mib": swap}


def sliding_recovery(records, start, end, threshold_s=0.25, window=1.0, step=0.1):
    """The first window start t >= `start` from which every 1 s window (by due time, answers and client
    failures alike) up to `end` has its p99 under the threshold; None if the p99 never got and stayed there."""
    points = []
    t = start
    while t + window <= end + 1e-9:
        inside = [r.latency for r in records if t <= r.sched < t + window]
        points.append((round(t, 2), pct(inside, 99)))
        t += step
    recovered = None
    for t_, p99 in reversed(points):
        if p99 is None or p99 >= threshold_s:
            break
        recovered = t_
    first_under = next((t_ for t_, p99 in points if p99 is not None and p99 < threshold_s), None)
    return recovered, first_under, points


# --- a measured phase ------------------------------------------------------------------------------------


class Context:
    def __init__(self, args, service, cgroup, out_dir, idle_cores):
        self.args = args
        self.service = service
        self.cgroup = cgroup
        self.out_dir = out_dir
        self.idle_cores = idle_cores
        self.counter = itertools.count()

    def cpu_usec(self):
        return self.cgroup.usage_usec() if self.cgroup else None


class Phase:
    pass


async def settle(ctx, load, sampler, timeout):
    """Wait until the service is idle again: no run queued or running, /health answering under 250 ms, and
    (with the cgroup) its CPU near the idle level; twice in a row. (seconds, settled?)."""
    threshold = max(0.15, (ctx.idle_cores or 0) * 2 + 0.08)
    started = load.now()
    good = 0
    last_usec, last_t = ctx.cpu_usec(), load.now()
    while load.now() - started < timeout:
        await asyncio.sleep(1.0)
        usec, now = ctx.cpu_usec(), load.now()
        cores = (usec - last_usec) / 1e6 / (now - last_t) if usec is not None and last_usec is not None else 0.0
        last_usec, last_t = usec, now
        try:
            queued, running = await asyncio.to_thread(ctx.service.db_active)
        except sqlite3.Error:
            queued = running = -1
        status, _, took = await sampler._get("/health", timeout=5.0)
        if queued == 0 and running == 0 and status in (200, 503) and took < 0.25 and cores < threshold:
            good += 1
            if good >= 2:
                return load.now() - started, True
        else:
            good = 0
    return load.now() - started, False


async def measured(ctx, body):
    """Run `body(load)` (the scenario's traffic) as one measured phase, then wait for the service to drain."""
    args = ctx.args
    phase = Phase()
    phase.started_utc = dt.datetime.now(dt.timezone.utc)
    phase.db_before = await asyncio.to_thread(ctx.service.db_counts)
    load = Load(ctx.service.port, args.cap)
    sampler = Sampler(ctx, load)
    log_positions = ctx.service.log_positions()
    processes0 = await asyncio.to_thread(cpu_by_process, ctx.cgroup)
    cpu0, client0, host0 = ctx.cpu_usec(), client_cpu_seconds(), host_busy_seconds()
    load.t0 = load.loop.time()
    sampler.start()
    try:
        phase.extra = await body(load) or {}
        phase.wall = load.now()
        cpu1, client1, host1 = ctx.cpu_usec(), client_cpu_seconds(), host_busy_seconds()
        phase.settle_s, phase.settled = await settle(ctx, load, sampler, args.settle_timeout)
        cpu2 = ctx.cpu_usec()
        processes2 = await asyncio.to_thread(cpu_by_process, ctx.cgroup)
        phase.end = load.now()
        status, body, _ = await sampler._get("/stats", ctx.service.staff_key, timeout=10.0)
        phase.open_breakers = json.loads(body).get("openCircuitBreakers", []) if status == 200 else None
    finally:
        await sampler.stop()
        load.pool.close()
    phase.db_after = await asyncio.to_thread(ctx.service.db_counts)
    phase.db_error_types = await asyncio.to_thread(
        ctx.service.db_errors, phase.started_utc.replace(tzinfo=None).isoformat(sep=" "))
    phase.log = ctx.service.log_events(log_positions)
    phase.records = load.records
    phase.service_samples, phase.host_samples = sampler.service, sampler.host
    phase.pool = {"opened": load.pool.opened, "max_open": load.pool.max_open,
                  "stale_keepalive_retries": load.pool.stale_retries}
    phase.client_cpu_s = client1 - client0
    phase.host_busy_s = host1 - host0
    phase.cpu_phase_ms = (cpu1 - cpu0) / 1000 if cpu0 is not None and cpu1 is not None else None
    phase.cpu_drain_ms = (cpu2 - cpu1) / 1000 if cpu1 is not None and cpu2 is not None else None
    phase.cpu_by_role = cpu_breakdown(processes0, processes2, (cpu2 - cpu0) / 1000 if cpu0 is not None else None)
    return phase


def service_figures(phase, ok_answers, idle_cores):
    finished = {}
    for key, after in phase.db_after.items():
        if key.split("/")[0] in ("success", "error", "timeout"):
            delta = after - phase.db_before.get(key, 0)
            if delta:
                finished[key] = delta
    runs = sum(finished.values())
    # Runs still queued or running once the phase has drained (or the drain gave up): lost, unless draining
    # timed out on runs that were merely slow.
    unfinished = {key: n for key, n in phase.db_after.items() if key.split("/")[0] in ("queued", "running") and n}
    figures = {"phase_s": round(phase.wall, 2), "drain_s": round(phase.settle_s, 1), "drained": phase.settled,
               "executions_finished": finished, "executions_unfinished_after": unfinished,
               "execution_error_types": phase.db_error_types,
               "cpu_ms_by_process": phase.cpu_by_role, "service_log": phase.log,
               "open_circuit_breakers_after": phase.open_breakers}
    if phase.cpu_phase_ms is not None:
        total = phase.cpu_phase_ms + phase.cpu_drain_ms
        figures.update(
            cpu_phase_ms=round(phase.cpu_phase_ms), cpu_drain_ms=round(phase.cpu_drain_ms),
            cores_used=round(phase.cpu_phase_ms / 1000 / phase.wall, 2),
            cpu_ms_per_ok_answer=round(total / ok_answers, 2) if ok_answers else None,
            cpu_ms_per_execution=round(total / runs, 2) if runs else None)
        if idle_cores is not None and ok_answers:
            net = total - idle_cores * 1000 * (phase.wall + phase.settle_s)
            figures["cpu_ms_per_ok_answer_net_of_idle"] = round(net / ok_answers, 2)
    samples = phase.service_samples
    figures["max_queue"] = max((s["db_queued"] for s in samples if "db_queued" in s), default=None)
    figures["max_running"] = max((s["db_running"] for s in samples if "db_running" in s), default=None)
    figures["pool_total"] = max((s["pool_total"] for s in samples if "pool_total" in s), default=None)
    asked = [s for s in samples if "stats_ms" in s]
    figures["stats_unanswered_samples"] = sum(1 for s in asked if "pool_total" not in s)
    figures["stats_samples"] = len(asked)
    return figures


def client_figures(phase):
    figures = {"cpu_s": round(phase.client_cpu_s, 2), "cores": round(phase.client_cpu_s / phase.wall, 3),
               **phase.pool, "host_busy_cores": round(phase.host_busy_s / phase.wall, 2)}
    if phase.cpu_phase_ms is not None:
        # Everything else on the host (other programs, the kernel's own work): a check on the figures.
        others = phase.host_busy_s - phase.cpu_phase_ms / 1000 - phase.client_cpu_s
        figures["others_on_host_cores"] = round(others / phase.wall, 2)
    return figures


# --- output --------------------------------------------------------------------------------------------


def fmt_lat(stats):
    if not stats:
        return "-"
    return f"{stats['p50']:g} / {stats['p95']:g} / {stats['p99']:g}"


def fmt_counts(counts):
    return ", ".join(f"{key} ×{n}" for key, n in counts.items()) or "none"


def print_report(title, streams, service, client, extra_lines):
    print(f"\n== {title} ==")
    header = (f"{'stream':<8} {'requests':>8} {'ok':>7} {'refused':>7} {'errors':>7} {'cl.fail':>7} {'ok/s':>8}  "
              f"{'ok p50/p95/p99 ms':<26} {'all answers p50/p95/p99 ms':<26}")
    print(header)
    for kind, f in streams.items():
        print(f"{kind:<8} {f['requests']:>8} {f['ok']:>7} {sum(f['refused'].values()):>7} {sum(f['errors'].values()):>7} "
              f"{sum(f['client_failures'].values()):>7} {f['throughput_ok_per_s']:>8.1f}  "
              f"{fmt_lat(f['latency_ok_ms']):<26} {fmt_lat(f['latency_answers_ms']):<26}")
    for kind, f in streams.items():
        bits = []
        if f["refused"]:
            bits.append(f"refused {fmt_counts(f['refused'])} (p50/p95/p99 {fmt_lat(f['latency_refused_ms'])} ms, "
                        f"Retry-After on {f['retry_after_headers']})")
        if f["errors"]:
            bits.append(f"errors {fmt_counts(f['errors'])}")
        for etype, messages in f["error_messages"].items():
            for message in messages:
                bits.append(f"{etype} message: {message!r}")
        if f["client_failures"]:
            bits.append(f"client failures {fmt_counts(f['client_failures'])}")
        if f["fallback_answers"]:
            bits.append(f"fallback answers {f['fallback_answers']}")
        for bit in bits:
            print(f"  {kind}: {bit}")
    if "cpu_phase_ms" in service:
        print(f"service  CPU {service['cpu_phase_ms']} ms in the {service['phase_s']} s phase = {service['cores_used']} "
              f"cores; +{service['cpu_drain_ms']} ms while draining ({service['drain_s']} s"
              f"{'' if service['drained'] else ', NOT drained'}); CPU per ok answer {service['cpu_ms_per_ok_answer']} "
              f"ms ({service.get('cpu_ms_per_ok_answer_net_of_idle')} net of idle), per execution "
              f"{service['cpu_ms_per_execution']} ms")
    else:
        print(f"service  (no cgroup: no CPU figures) phase {service['phase_s']} s; drain {service['drain_s']} s"
              f"{'' if service['drained'] else ' (NOT drained)'}")
    if service.get("cpu_ms_by_process"):
        print(f"         CPU ms by process (phase + drain, approximate): "
              f"{', '.join(f'{role} {ms}' for role, ms in service['cpu_ms_by_process'].items())}")
    print(f"         executions finished: {fmt_counts(service['executions_finished'])}; max queued {service['max_queue']}, "
          f"max running {service['max_running']}, pool {service['pool_total']}; /stats unanswered in "
          f"{service['stats_unanswered_samples']}/{service['stats_samples']} looks")
    for text, n in service["service_log"]["exceptions"].items():
        print(f"         service log: {text} ×{n}")
    for text, n in service["service_log"]["process_exits"].items():
        print(f"         supervisord: exited: {text} ×{n}")
    for breaker in service["open_circuit_breakers_after"] or ():
        print(f"         circuit breaker of {breaker.get('pluginId')} is {breaker.get('state')} after the phase: "
              f"the next scenarios' runs of it may be refused (BREAKER_OPEN_SECONDS)")
    lateness = " / ".join(f"{kind} {f['client_lateness_ms']['p99']:g}" for kind, f in streams.items()
                          if f["client_lateness_ms"])
    send = " / ".join(f"{kind} {f['send_delay_ms']['p99']:g}" for kind, f in streams.items() if f["send_delay_ms"])
    print(f"client   CPU {client['cpu_s']} s ({client['cores'] * 100:.1f} % of a core); lateness p99 {lateness} ms; "
          f"send delay (incl. pool wait, connect) p99 {send} ms; connections opened {client['opened']} "
          f"(max open {client['max_open']}), stale keep-alive retries {client['stale_keepalive_retries']}")
    print(f"host     {client['host_busy_cores']} of {os.cpu_count()} cores busy in the phase"
          + (f"; outside the service and this client: {client['others_on_host_cores']} cores"
             if "others_on_host_cores" in client else ""))
    for line in extra_lines:
        print(line)
    sys.stdout.flush()


def chart(title, subtitle, phase, kinds, markers, with_memory=False):
    end = phase.end
    seconds = per_second(phase.records, kinds, end)
    host = host_series(phase.host_samples, end)
    xs = seconds["t"]
    latency_series = []
    for kind in kinds:
        per = seconds["latency"][kind]
        if len(kinds) == 1:
            latency_series += [{"name": f"{kind} p50", "points": list(zip(xs, per[50]))},
                               {"name": f"{kind} p95", "points": list(zip(xs, per[95]))},
                               {"name": f"{kind} p99", "points": list(zip(xs, per[99]))}]
        else:
            latency_series += [{"name": f"{kind} p50", "points": list(zip(xs, per[50])), "dash": True},
                               {"name": f"{kind} p99", "points": list(zip(xs, per[99]))}]

    def service_points(key):
        return [(s["t"], s.get(key)) for s in phase.service_samples]

    panels = [
        {"title": "Requests per second", "unit": "per 1 s bucket", "series": [
            {"name": "sent (due)", "points": list(zip(xs, seconds["sent"])), "dash": True},
            {"name": "ok answers", "points": list(zip(xs, seconds["ok"]))},
            {"name": "refused + errors", "points": list(zip(xs, seconds["not_ok"]))},
            {"name": "client failures", "points": list(zip(xs, seconds["failed"]))}]},
        {"title": "Latency from due time, answers", "unit": "ms, by due second", "log": True, "series": latency_series},
        {"title": "Service", "unit": "count", "series": [
            {"name": "pool (/stats total)", "points": service_points("pool_total")},
            {"name": "running (/stats active)", "points": service_points("pool_active")},
            {"name": "queue (/metrics)", "points": service_points("queue")},
            {"name": "queued (database)", "points": service_points("db_queued"), "dash": True},
            {"name": "running (database)", "points": service_points("db_running"), "dash": True}]},
        {"title": "CPU", "unit": "cores", "series": [
            {"name": "service (cgroup)", "points": list(zip(xs, host["service_cores"]))},
            {"name": "client", "points": list(zip(xs, host["client_cores"]))}]},
    ]
    if with_memory:
        panels.append({"title": "Host memory", "unit": "GiB available / MiB swap", "series": [
            {"name": "available GiB", "points": list(zip(xs, host["available_gib"]))},
            {"name": "swap used MiB", "points": list(zip(xs, host["swap_used_mib"]))}]})
    markers = list(markers) + [(phase.wall, "last answer")]
    return load_chart.render(title, end, panels, subtitle=subtitle, markers=markers), seconds, host


def write_outputs(ctx, name, title, phase, figures, kinds, markers, with_memory=False):
    stamp = phase.started_utc.strftime("%Y%m%dT%H%M%SZ")
    subtitle = (f"{stamp}; per 1 s bucket; latency counted from each request's due time; then "
                f"{phase.settle_s:.0f} s waiting for the service to drain")
    svg, seconds, host = chart(title, subtitle, phase, kinds, markers, with_memory)
    base = os.path.join(ctx.out_dir, f"{name}-{stamp}")
    report = {
        "scenario": name, "title": title, "started_utc": phase.started_utc.isoformat(),
        "config": vars(ctx.args), "idle_service_cores": ctx.idle_cores,
        "service_settings": {k: os.environ.get(k) for k in ("WORKERS_HIGH", "WORKERS_MEDIUM", "WORKERS_LOW",
                                                            "MAX_WORKERS", "WEB_WORKERS", "WEB_THREADS", "QUEUE_LIMIT")},
        "host": {"cpus": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total},
        "figures": figures, "per_second": seconds, "host_per_second": host,
        "service_samples": phase.service_samples, "host_samples": phase.host_samples,
    }
    if not ctx.args.no_raw:
        fields = ("kind", "sched", "budget", "start_lag", "sent", "done", "status", "etype", "retry_after", "fail",
                  "cache_hit", "message")
        report["requests"] = {f: [round(v, 5) if isinstance(v, float) else v
                                  for v in (getattr(r, f) for r in phase.records)] for f in fields}
    with open(base + ".json", "w") as handle:
        json.dump(report, handle, indent=1, default=str)
    with open(base + ".svg", "w") as handle:
        handle.write(svg)
    print(f"wrote {base}.json and {base}.svg", flush=True)


# --- scenarios -------------------------------------------------------------------------------------------


def noop_stream(ctx, kind, rate, duration, start=0.0):
    key, timeout_ms = ctx.service.key, ctx.args.timeout_ms
    budget = timeout_ms / 1000 + ctx.args.client_slack

    def request(i):
        return "POST", "/execute", execute_payload("noop", {"i": next(ctx.counter)}, timeout_ms), key, budget

    return Stream(kind, rate, duration, request, start)


def sync_streams_report(ctx, name, title, phase, kinds, markers, extra_lines=(), extra=None, with_memory=False):
    streams = {kind: stream_figures([r for r in phase.records if r.kind == kind]) for kind in kinds}
    ok_answers = sum(f["ok"] for f in streams.values())
    service = service_figures(phase, ok_answers, ctx.idle_cores)
    client = client_figures(phase)
    print_report(title, streams, service, client, list(extra_lines))
    figures = {"streams": streams, "service": service, "client": client, **(extra or {})}
    write_outputs(ctx, name, title, phase, figures, kinds, markers, with_memory)
    return figures


def within_budget(records, timeout_ms):
    limit = timeout_ms / 1000 + 1.0
    late = [r for r in records if r.status is None or r.latency > limit]
    return {"limit_s": limit, "late_or_unanswered": len(late), "all_answered_in_time": not late,
            "latest_answer_s": round(max((r.latency for r in records if r.status is not None), default=0.0), 2)}


async def scenario_sustained(ctx, a):
    rate, duration = a.rate or 100, a.duration or (10 if a.quick else 600)
    title = f"sustained: sync bench.noop (cache miss) at {rate:g}/s for {duration:g} s"
    phase = await measured(ctx, lambda load: load.open_loop([noop_stream(ctx, "noop", rate, duration)]))
    return sync_streams_report(ctx, "sustained", title, phase, ["noop"], [])


async def scenario_overload(ctx, a):
    rate, duration = a.rate or a.overload_rate, a.duration or (5 if a.quick else 60)
    title = f"overload: sync bench.noop at {rate:g}/s for {duration:g} s"
    phase = await measured(ctx, lambda load: load.open_loop([noop_stream(ctx, "noop", rate, duration)]))
    records = phase.records
    budget = within_budget(records, a.timeout_ms)
    refused = [r for r in records if r.refused]
    lines = [f"overload: {len(refused)} of {len(records)} refused ({100 * len(refused) / max(1, len(records)):.1f} %): "
             f"{fmt_counts(tally(f'{r.status} {r.etype}' for r in refused))}; refusals took p50/p95/p99 "
             f"{fmt_lat(ms_stats([r.latency for r in refused]))} ms",
             f"overload: answered within timeout + 1 s ({budget['limit_s']:g} s): "
             f"{'every request' if budget['all_answered_in_time'] else 'NO'}; late or unanswered "
             f"{budget['late_or_unanswered']}; latest answer after {budget['latest_answer_s']} s"]
    return sync_streams_report(ctx, "overload", title, phase, ["noop"], [], lines, {"within_timeout": budget})


async def scenario_burst(ctx, a):
    rate, duration = a.rate or a.burst_rate, a.duration or (3 if a.quick else 10)
    title = (f"burst: 0 -> {rate:g}/s sync bench.noop for {duration:g} s, then {a.tail_rate:g}/s for "
             f"{a.tail_duration:g} s")
    streams = [noop_stream(ctx, "burst", rate, duration), noop_stream(ctx, "tail", a.tail_rate, a.tail_duration,
                                                                        start=duration)]
    phase = await measured(ctx, lambda load: load.open_loop(streams))
    end = duration + a.tail_duration
    recovered, first_under, points = sliding_recovery(phase.records, duration, end)
    lines = ["burst: p99 of a sliding 1 s window (answers and client failures, by due time) back under 250 ms "
             + (f"for good {recovered - duration:.1f} s after the burst ended" if recovered is not None
                else f"NOT within the {a.tail_duration:g} s tail")
             + (f" (first under at +{first_under - duration:.1f} s)" if first_under is not None else "")]
    extra = {"recovery": {"stays_under_250ms_after_s": None if recovered is None else round(recovered - duration, 2),
                          "first_under_250ms_after_s": None if first_under is None else round(first_under - duration, 2),
                          "sliding_p99_ms": [(t, None if p is None else round(p * 1000, 1)) for t, p in points]}}
    return sync_streams_report(ctx, "burst", title, phase, ["burst", "tail"], [(duration, "burst ends")], lines, extra)


async def scenario_long(ctx, a):
    callers = a.long_callers or (20 if a.quick else 200)
    seconds = a.duration or a.long_seconds or (3 if a.quick else 30)
    trivial_rate = a.rate or a.trivial_rate
    timeout_ms = int(seconds * 1000 + 5000)
    key = ctx.service.key
    length = seconds + 5
    title = (f"long: {callers} sync bench.sleep({seconds:g} s, timeout {timeout_ms} ms) beside bench.noop at "
             f"{trivial_rate:g}/s and /health every 0.5 s for {length:g} s")

    def sleeper(i):
        return ("POST", "/execute", execute_payload("sleep", {"seconds": seconds, "i": next(ctx.counter)}, timeout_ms),
                key, timeout_ms / 1000 + a.client_slack)

    def health(i):
        return "GET", "/health", None, None, seconds + 30

    streams = [Stream("sleep", callers, 1.0, sleeper), noop_stream(ctx, "noop", trivial_rate, length),
               Stream("health", 2, length, health)]
    phase = await measured(ctx, lambda load: load.open_loop(streams))
    noop = [r for r in phase.records if r.kind == "noop" and r.ok]
    health_answers = [r for r in phase.records if r.kind == "health" and r.status is not None]
    lines = [f"long: trivial noop ok p50/p95/p99 {fmt_lat(ms_stats([r.latency for r in noop]))} ms; /health "
             f"p50/p95/p99 {fmt_lat(ms_stats([r.latency for r in health_answers]))} ms (max "
             f"{(ms_stats([r.latency for r in health_answers]) or {}).get('max')} ms; statuses "
             f"{fmt_counts(tally(r.status for r in health_answers))})"]
    return sync_streams_report(ctx, "long", title, phase, ["sleep", "noop", "health"], [], lines)


async def scenario_memory(ctx, a):
    mb, callers = a.memory_mb, a.memory_concurrency
    duration = a.duration or (10 if a.quick else 60)
    key, timeout_ms = ctx.service.key, a.timeout_ms
    title = f"memory: bench.alloc({mb} MiB) by {callers} closed-loop callers for {duration:g} s (memoryMb 512)"

    def request(i):
        return ("POST", "/execute", execute_payload("alloc", {"mb": mb, "i": next(ctx.counter)}, timeout_ms), key,
                timeout_ms / 1000 + a.client_slack)

    swap0 = psutil.swap_memory().used
    phase = await measured(ctx, lambda load: load.closed_loop("alloc", callers, duration, request))
    available = [s["available"] for s in phase.host_samples]
    swap = [s["swap_used"] for s in phase.host_samples]
    memory = {"min_available_mib": round(min(available) / 2**20) if available else None,
              "start_available_mib": round(available[0] / 2**20) if available else None,
              "swap_delta_mib": round((max(swap, default=swap0) - swap0) / 2**20, 1),
              "total_mib": round(psutil.virtual_memory().total / 2**20)}
    statuses = tally(f"{r.status} {r.etype or 'ok'}" if r.status is not None else f"client {r.fail}"
                     for r in phase.records)
    lines = [f"memory: answers {fmt_counts(statuses)}",
             f"memory: host available min {memory['min_available_mib']} MiB (from {memory['start_available_mib']} of "
             f"{memory['total_mib']} MiB), swap used +{memory['swap_delta_mib']} MiB"]
    return sync_streams_report(ctx, "memory", title, phase, ["alloc"], [], lines,
                               {"memory": memory, "answers": statuses}, with_memory=True)


async def scenario_cache_hits(ctx, a):
    rate, duration = a.rate or a.cache_rate, a.duration or (5 if a.quick else 20)
    key, timeout_ms = ctx.service.key, a.timeout_ms
    params = {"fixed": "bench-load cache hit"}
    for _ in range(10):  # warm: the first run fills the cache
        status, body = await asyncio.to_thread(ctx.service.execute, "echo", params, timeout_ms)
        if status == 200 and body.get("cacheHit"):
            break
    payload = execute_payload("echo", params, timeout_ms)

    def request(i):
        return "POST", "/execute", payload, key, timeout_ms / 1000 + a.client_slack

    title = f"cache-hits: sync bench.echo (fixed params, warmed) at {rate:g}/s for {duration:g} s"
    phase = await measured(ctx, lambda load: load.open_loop([Stream("echo", rate, duration, request)]))
    ok = [r for r in phase.records if r.ok]
    hits = sum(1 for r in ok if r.cache_hit)
    lines = [f"cache-hits: {hits} of {len(ok)} ok answers were cache hits"]
    return sync_streams_report(ctx, "cache-hits", title, phase, ["echo"], [], lines)


RUNNERS = {"sustained": scenario_sustained, "overload": scenario_overload, "burst": scenario_burst,
           "long": scenario_long, "memory": scenario_memory, "cache-hits": scenario_cache_hits}


# --- main --------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS + ("all",),
                        help="one scenario (repeatable); default: all")
    parser.add_argument("--quick", action="store_true", help="seconds-long versions of the scenarios")
    parser.add_argument("--rate", type=float, help="override the main stream's rate of the selected scenarios")
    parser.add_argument("--duration", type=float, help="override the main stream's length (s) of the selected scenarios")
    parser.add_argument("--overload-rate", type=float, default=300.0)
    parser.add_argument("--burst-rate", type=float, default=500.0)
    parser.add_argument("--tail-rate", type=float, default=20.0)
    parser.add_argument("--tail-duration", type=float, default=10.0)
    parser.add_argument("--long-callers", type=int, help="default 200 (quick 20)")
    parser.add_argument("--long-seconds", type=float, help="default 30 (quick 3)")
    parser.add_argument("--trivial-rate", type=float, default=20.0)
    parser.add_argument("--memory-mb", type=int, default=400)
    parser.add_argument("--memory-concurrency", type=int, default=10)
    parser.add_argument("--cache-rate", type=float, default=1000.0)
    parser.add_argument("--timeout-ms", type=int, default=30000, help="the requests' `timeout` field")
    parser.add_argument("--client-slack", type=float, default=15.0,
                        help="the client gives up on a request this many seconds after its due time + timeout")
    parser.add_argument("--cap", type=int, default=2000, help="most connections open at once")
    parser.add_argument("--settle-timeout", type=float, default=600.0,
                        help="longest wait for the service to drain after a phase")
    parser.add_argument("--out", help="folder for the JSON and SVG reports (default: a new temporary folder)")
    parser.add_argument("--no-raw", action="store_true", help="leave every request's record out of the JSON")
    parser.add_argument("--keep-var", action="store_true", help="keep the service's VAR_DIR (logs, database)")
    parser.add_argument("--no-cgroup", action="store_true", help="do not make a cgroup: wall figures only")
    args = parser.parse_args(argv)
    chosen = args.scenario or ["all"]
    args.scenario = list(SCENARIOS) if "all" in chosen else list(dict.fromkeys(chosen))
    return args


async def idle_baseline(ctx, seconds=4.0):
    """The service's CPU with no traffic but the side task's 1 s sampling, in cores (None without cgroup)."""
    if not ctx.cgroup:
        return None
    load = Load(ctx.service.port, 4)
    sampler = Sampler(ctx, load)
    before, started = ctx.cpu_usec(), time.monotonic()
    sampler.start()
    await asyncio.sleep(seconds)
    await sampler.stop()
    return round((ctx.cpu_usec() - before) / 1e6 / (time.monotonic() - started), 3)


def warm_up(service):
    for i in range(20):
        service.execute("noop", {"warm": i})
    status, body = service.execute("sleep", {"seconds": 0})
    if status != 200:
        print(f"warm-up: bench.sleep answered {status} {body}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.cap * 2 + 256)), hard))

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    out_dir = args.out or tempfile.mkdtemp(prefix="pex-load-results-")
    os.makedirs(out_dir, exist_ok=True)
    var_dir = tempfile.mkdtemp(prefix="pex-load-var-")
    cgroup, why = (None, "--no-cgroup") if args.no_cgroup else CpuCgroup.create()
    if cgroup:
        print(f"service CPU from cgroup {cgroup.path}", flush=True)
    else:
        print(f"no cgroup for the service ({why}): wall figures only", flush=True)
    service = Service(var_dir, cgroup)
    outcome = "failed"
    try:
        started = time.monotonic()
        service.start()
        print(f"service up on 127.0.0.1:{service.port} in {time.monotonic() - started:.1f} s (VAR_DIR {var_dir})",
              flush=True)
        if cgroup:
            print(f"cgroup holds {len(cgroup.pids())} processes (web, clusters, fork-servers, …)", flush=True)
        service.prepare()
        warm_up(service)
        ctx = Context(args, service, cgroup, out_dir, None)
        ctx.idle_cores = asyncio.run(idle_baseline(ctx))
        if ctx.idle_cores is not None:
            print(f"idle service (with the /stats + /metrics sampling every 5 s): {ctx.idle_cores} cores", flush=True)
        for name in args.scenario:
            asyncio.run(RUNNERS[name](ctx, args))
        outcome = "done"
        print(f"\nreports in {out_dir}", flush=True)
    except KeyboardInterrupt:
        outcome = "interrupted"
        print(f"\ninterrupted; reports so far in {out_dir}", flush=True)
    finally:
        # Clean-up is not to be interrupted half-way: the service must stop and the cgroup go.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if outcome == "failed" and service.make is not None:
            print(f"service log tail:\n{service.log_tail(15)}", flush=True)
        print("stopping the service (one SIGTERM to make; it drains)…", flush=True)
        took = service.stop()
        print(f"service stopped in {took:.1f} s", flush=True)
        if cgroup:
            cgroup.remove()
        if args.keep_var or outcome == "failed":
            print(f"service VAR_DIR kept: {var_dir}", flush=True)
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    if outcome == "interrupted":
        sys.exit(130)


if __name__ == "__main__":
    main()
