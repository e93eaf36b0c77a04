"""Helpers for the hostile-plugin tests in tests/sandbox: pure Python, no
Django (see tests/sandbox/__init__.py for why that matters).

The plugins below run inside the real sandbox (ForkServerClient); the helpers
here run on the host and look at what the plugin could or could not touch.
The fixtures that start the fork-servers are in tests/sandbox/conftest.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import psutil

from sandbox import NODE_SPARES, SPARES, ForkServerClient, RunRequest, RunResult

CONTAINED_ERRORS = {"MEMORY_LIMIT_EXCEEDED", "OUTPUT_LIMIT_EXCEEDED", "WORKER_CRASHED", "PLUGIN_ERROR", "TIMEOUT"}

# Prepended to every plugin: small tools a hostile plugin uses to try things
# and report what it observed (never raising, so the run itself succeeds and
# the test reads the plugin's own account).
PRELUDE = r'''
import ctypes as _ctypes
import errno as _errno
import gc as _gc
import json as _json
import os as _os
import socket as _socket
import struct as _struct

def attempt(fn, *args, **kwargs):
    try:
        value = fn(*args, **kwargs)
    except BaseException as error:
        return {"blocked": True, "error": f"{type(error).__name__}: {error}"[:300]}
    return {"blocked": False, "value": repr(value)[:300]}

_LIBC = []

def libc():
    if not _LIBC:
        _LIBC.append(_ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]

def c_call(name, *args, restype=_ctypes.c_int):
    fn = getattr(libc(), name)
    fn.restype = restype
    _ctypes.set_errno(0)
    ret = fn(*args)
    err = _ctypes.get_errno()
    return {"ret": ret, "errno": err, "errname": _errno.errorcode.get(err, str(err)), "blocked": ret == -1}

def sys_call(number, *args):
    conv = [_ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return c_call("syscall", _ctypes.c_long(number), *conv, restype=_ctypes.c_long)

def channel(ctx):
    """The run's channel to the host (the socket ctx.http talks on)."""
    chan = getattr(getattr(ctx, "http", None), "_channel", None)
    if chan is not None:
        return chan
    for obj in _gc.get_objects():
        if isinstance(obj, _socket.socket) and obj.fileno() >= 0 and obj.family == _socket.AF_UNIX:
            return obj
    raise LookupError("no channel found")

def send_raw_frame(ctx, payload_bytes):
    channel(ctx).sendall(_struct.pack("!I", len(payload_bytes)) + payload_bytes)

def send_json_frame(ctx, message):
    send_raw_frame(ctx, _json.dumps(message, ensure_ascii=True).encode())
'''


def plugin(body: str) -> str:
    """A plugin source: the prelude plus the attack body."""
    return PRELUDE + "\n" + body


def new_token(prefix="canary") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def make_request(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", runtime="python", **extra):
    entrypoint = "plugin.js" if runtime == "node" else "plugin.py"
    return RunRequest(
        execution_id=str(uuid.uuid4()),
        modules={entrypoint: source},
        entrypoint=entrypoint,
        runtime=runtime,
        handler=handler,
        params=params if params is not None else {},
        timeout_ms=timeout_ms,
        memory_bytes=memory_mb * 1024 * 1024,
        secrets=dict(secrets or {}),
        **extra,
    )


def result_text(result: RunResult) -> str:
    """Every field of a RunResult, as one string (for leak checks)."""
    fields = dataclasses.asdict(result)
    return json.dumps(fields, ensure_ascii=False, default=str)


def utf8_clean(result: RunResult) -> list:
    """The RunResult string fields that cannot be encoded as UTF-8 (lone
    surrogates): the host would choke on them when storing or serving them."""
    bad = []
    for name in ("status", "error_type", "message", "traceback", "result_json"):
        value = getattr(result, name)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                bad.append(name)
    for index, line in enumerate(result.logs):
        try:
            str(line).encode("utf-8")
        except UnicodeEncodeError:
            bad.append(f"logs[{index}]")
    return bad


# -- the suite's constants --------------------------------------------------------

CANARY = new_token("host-canary")  # put in the environment of the fork-servers' parent: never in a result
TOKEN = new_token("hostile")  # names of files/sockets the attacks try to create
ALL_RESULTS = []  # every RunResult of the package, for the final leak check
UID_BASE = 260000  # not the service's default (200000): see tests/sandbox/__init__.py
STDLIB = os.path.dirname(os.__file__)  # bind-mounted (read-only) into the sandbox at the same path

BENIGN = "def attack(params, ctx):\n    return {'ok': True, 'echo': params}\n"
SPIN = "def attack(params, ctx):\n    while True:\n        pass\n"


# -- host-side process checks ---------------------------------------------------


def server_pids(client: ForkServerClient) -> dict:
    """The fork-server's host pids: the outer process and its namespace init."""
    outer = client.process.pid if client.process else None
    inner = []
    if outer and psutil.pid_exists(outer):
        inner = [child.pid for child in psutil.Process(outer).children(recursive=False)]
    return {"outer": outer, "inner": tuple(inner), "ns_pid": client.pid}


def alive(pid) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def _descendants(client):
    if not client.process:
        return set(), []
    try:
        descendants = psutil.Process(client.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return set(), []
    inner = set(server_pids(client)["inner"])
    others = []
    for proc in descendants:
        if proc.pid in inner:
            continue
        try:
            others.append((proc.pid, proc.ppid(), proc.status()))
        except psutil.NoSuchProcess:
            continue
    return inner, others


def process_snapshot(client: ForkServerClient) -> set:
    """The pids under the fork-server's namespace init right now (the waiting
    spare, and whatever else)."""
    return {pid for pid, _, status in _descendants(client)[1] if status != psutil.STATUS_ZOMBIE}


def leftover_processes(client: ForkServerClient, before=frozenset(), settle_seconds=1.0) -> list:
    """Processes under the fork-server that should not be there once a run is
    answered. Allowed: the namespace init and its waiting spares (direct
    children of the init, at most SPARES, and NODE_SPARES once a Node run
    has been made). One of the processes there before
    the run (the spare that became the run's child) must be gone. A run's
    child may take a moment to exit after it has answered, so this waits up
    to `settle_seconds`."""
    deadline = time.monotonic() + settle_seconds
    while True:
        inner, others = _descendants(client)
        live = [p for p in others if p[2] != psutil.STATUS_ZOMBIE]
        still_there = {p[0] for p in live} & set(before)
        grandchildren = [p for p in live if p[1] not in inner]
        if len(live) <= SPARES + NODE_SPARES and not grandchildren and (not before or len(still_there) < len(before)):
            return []
        if time.monotonic() >= deadline:
            return live
        time.sleep(0.02)


class PeakRss:
    """Samples this process's RSS in a thread: the peak growth over a block."""

    def __init__(self, interval=0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.base = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mb(self):
        return (self.peak - self.base) / (1024 * 1024)


# -- host-side listeners ----------------------------------------------------------


class Listeners:
    """Real sockets on the host that a plugin might try to reach."""

    def __init__(self, directory: Path, token: str):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.tcp6 = None
        try:
            self.tcp6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.tcp6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp6.bind(("::1", 0))
            self.tcp6.listen(16)
            self.tcp6.setblocking(False)
        except OSError:
            self.tcp6 = None
        self.unix_path = str(directory / f"hostile-{token[-8:]}.sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        self.unix.listen(16)
        self.unix.setblocking(False)
        self.unix_dgram_path = str(directory / f"hostile-{token[-8:]}.dgram")
        self.unix_dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.unix_dgram.bind(self.unix_dgram_path)
        self.unix_dgram.setblocking(False)
        self.abstract_name = f"\0hostile-host-{token[-12:]}"
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.abstract.bind(self.abstract_name)
        self.abstract.setblocking(False)

    @property
    def tcp_port(self):
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self):
        return self.udp.getsockname()[1]

    @property
    def tcp6_port(self):
        return self.tcp6.getsockname()[1] if self.tcp6 else 0

    def addresses(self):
        return {
            "tcp_port": self.tcp_port,
            "udp_port": self.udp_port,
            "tcp6_port": self.tcp6_port,
            "unix_path": self.unix_path,
            "unix_dgram_path": self.unix_dgram_path,
            "abstract_name": self.abstract_name,
        }

    def received(self) -> dict:
        """What reached any listener since the last call (empty means nothing)."""
        seen = {}
        for name, sock in (("tcp", self.tcp), ("tcp6", self.tcp6), ("unix", self.unix)):
            if sock is None:
                continue
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, OSError):
                continue
            seen[name] = repr(peer)
            conn.close()
        for name, sock in (("udp", self.udp), ("unix_dgram", self.unix_dgram), ("abstract", self.abstract)):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, OSError):
                continue
            seen[name] = data[:100]
        return seen

    def close(self):
        for sock in (self.tcp, self.udp, self.tcp6, self.unix, self.unix_dgram, self.abstract):
            if sock is not None:
                sock.close()
        for path in (self.unix_path, self.unix_dgram_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


# -- running an attack ------------------------------------------------------------


def run_on(client, source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", egress_handler=None, **extra):
    """Run `source` (already with the prelude) on `client`, and record on the
    result what the host saw around the run: elapsed time, leftover
    processes, whether the fork-server was replaced or died."""
    before = server_pids(client)
    # A Node run takes a Node spare (or starts one) and leaves the Python
    # spares waiting: only the count of what is left is checked then.
    procs_before = process_snapshot(client) if extra.get("runtime", "python") == "python" else frozenset()
    request = make_request(source, params=params, timeout_ms=timeout_ms, memory_mb=memory_mb, secrets=secrets, handler=handler, **extra)
    started = time.monotonic()
    result = client.run(request, egress_handler=egress_handler)
    result.elapsed = time.monotonic() - started
    result.leftovers = leftover_processes(client, before=procs_before)
    after = server_pids(client)
    result.server_replaced = before != after
    result.server_alive = alive(after["outer"]) and all(alive(pid) for pid in after["inner"])
    ALL_RESULTS.append(result)
    assert CANARY not in result_text(result), "the host canary leaked into a run result"
    return result


def host_intact(sandbox, result):
    """The host-side checks every test makes after an attack."""
    assert not result.leftovers, f"processes left under the fork-server: {result.leftovers}"
    assert not result.server_replaced, "the fork-server was replaced during the run"
    assert result.server_alive, "the fork-server is not alive after the run"
    for name in ("a", "b"):
        client = getattr(sandbox, name)
        pids = server_pids(client)
        assert pids == sandbox.start_pids[name], f"fork-server {name} changed: {sandbox.start_pids[name]} -> {pids}"
        assert alive(pids["outer"]) and all(alive(p) for p in pids["inner"])
    assert alive(os.getpid())


def in_background(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as error:  # reported by the test
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box
