"""Hostile plugins against the real sandbox (pure pytest: no Django, no DB).

Run: cd /work/main && .venv/bin/python -m pytest tests/test_hostile_plugins.py -q -p no:django --noconftest
(tests/conftest.py imports DRF at import time, which needs Django settings:
with `-p no:django` either pass --noconftest or set DJANGO_SETTINGS_MODULE.)

The clients use their own uid range (UID_BASE) so that these runs never share
a uid -- and so an RLIMIT_NPROC count -- with a dev server or qcluster running
beside the tests with the default one.

Every test runs a plugin that tries to break out (or to break the host) and
asserts both that the attempt failed -- from the plugin's own report of what it
observed, or from how the run ended -- and that the host was not touched: no
file appeared on the host, no listener received anything, the canary put in
this process's environment never came back, the fork-servers are the same live
processes and nothing is left running under them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_helpers import (  # noqa: E402
    ALL_LAYERS,
    CONTAINED_ERRORS,
    ROOT,
    ForkServerClient,
    Listeners,
    PeakRss,
    alive,
    leftover_processes,
    make_request,
    new_token,
    plugin,
    process_snapshot,
    result_text,
    server_pids,
    utf8_clean,
)

pytestmark = pytest.mark.slow

CANARY = new_token("host-canary")
TOKEN = new_token("hostile")  # names of files/sockets the attacks try to create
ALL_RESULTS = []  # every RunResult of the module, for the final leak check
UID_BASE = 260000  # not the service's default (200000): see the module docstring
STDLIB = os.path.dirname(os.__file__)  # bind-mounted (read-only) into the sandbox at the same path

BENIGN = "def attack(params, ctx):\n    return {'ok': True, 'echo': params}\n"
SPIN = "def attack(params, ctx):\n    while True:\n        pass\n"


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    # The canary is in the environment of the process that starts the
    # fork-servers: no field of any run may ever contain it.
    os.environ["HOST_CANARY"] = CANARY
    host_dir = tmp_path_factory.mktemp("hostile-host")
    canary_file = host_dir / "canary.txt"
    canary_file.write_text(f"HOST_CANARY={CANARY}\n")
    lock_dir = tempfile.mkdtemp(prefix="hostile-locks-")
    # Same lock dir: A and B get different slots, so different uids and cgroups.
    a = ForkServerClient(lock_dir=lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS))
    b = ForkServerClient(lock_dir=lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS))
    listeners = None
    try:
        a.ensure_started()
        b.ensure_started()
        listeners = Listeners(host_dir, TOKEN)
        env = SimpleNamespace(
            a=a,
            b=b,
            lock_dir=lock_dir,
            host_dir=host_dir,
            canary_file=canary_file,
            listeners=listeners,
            start_pids={"a": server_pids(a), "b": server_pids(b)},
        )
        yield env
    finally:
        if listeners:
            listeners.close()
        a.close()
        b.close()
        shutil.rmtree(lock_dir, ignore_errors=True)
        os.environ.pop("HOST_CANARY", None)


def _run_on(client, source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", egress_handler=None, **extra):
    before = server_pids(client)
    procs_before = process_snapshot(client)
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


@pytest.fixture
def run(sandbox):
    """run(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack")
    on client A; the source gets the attack prelude."""

    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return _run_on(sandbox.a, plugin(source), params, timeout_ms, memory_mb, secrets, handler, **kwargs)

    return go


@pytest.fixture
def run_b(sandbox):
    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return _run_on(sandbox.b, plugin(source), params, timeout_ms, memory_mb, secrets, handler, **kwargs)

    return go


@pytest.fixture
def fresh_client(sandbox):
    """A client of its own (next free slot of the same lock dir), for attacks
    that may leave a client unusable."""
    client = ForkServerClient(lock_dir=sandbox.lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS))
    client.ensure_started()
    yield client
    client.close()


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


# -- processes and threads ------------------------------------------------------------


def test_fork_bomb(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    made, errors = 0, []
    for _ in range(64):
        try:
            pid = _os.fork()
        except OSError as error:
            errors.append(str(error))
            continue
        if pid == 0:
            while True:
                try:
                    _os.fork()
                except OSError:
                    _os._exit(0)
        made += 1
    return {"forked": made, "errors": errors[:2], "error_count": len(errors)}
"""
    )
    assert result.status == "success", result
    assert result.result["forked"] == 0, result.result
    assert result.result["error_count"] == 64
    host_intact(sandbox, result)


def test_thread_bomb_is_capped(sandbox, run):
    result = run(
        """
import threading
def attack(params, ctx):
    gate = threading.Event()
    started, error = 0, None
    for _ in range(100000):
        thread = threading.Thread(target=gate.wait, daemon=True)
        try:
            thread.start()
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            break
        started += 1
    gate.set()
    return {"started": started, "error": error}
"""
    )
    assert result.status == "success", result
    assert result.result["started"] < 16, result.result
    assert result.result["error"], result.result
    host_intact(sandbox, result)


MEMORY_BOMBS = {
    "many_10mb_chunks": """
def attack(params, ctx):
    keep = []
    while True:
        keep.append(bytearray(10 * 1024 * 1024))
""",
    "one_huge_bytearray": """
def attack(params, ctx):
    return len(bytearray(10 ** 10))
""",
    "list_growing_forever": """
def attack(params, ctx):
    items, i = [], 0
    while True:
        items.append(i * 7919)
        i += 1
""",
    "bytes_doubling": """
def attack(params, ctx):
    blob = b"x" * 1024
    while True:
        blob = blob + blob
""",
}


@pytest.mark.parametrize("kind", sorted(MEMORY_BOMBS))
def test_memory_bomb(sandbox, run, kind):
    with PeakRss() as rss:
        result = run(MEMORY_BOMBS[kind], timeout_ms=5000, memory_mb=128)
    assert result.error_type == "MEMORY_LIMIT_EXCEEDED", result
    assert result.elapsed < 4.0, result.elapsed
    assert rss.growth_mb < 32, f"host grew by {rss.growth_mb:.0f} MiB"
    host_intact(sandbox, result)


# -- time ---------------------------------------------------------------------------------

TIME_BOMBS = {
    "infinite_loop": SPIN,
    "sum_range_in_c": "def attack(params, ctx):\n    return sum(range(10 ** 12))\n",
    "regex_backtracking": "import re\ndef attack(params, ctx):\n    return bool(re.match(r'(a+)+$', 'a' * 64 + 'b'))\n",
    "ignores_sigterm": """
import signal, time
def attack(params, ctx):
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        time.sleep(0.05)
""",
    "sleep_past_timeout": "import time\ndef attack(params, ctx):\n    time.sleep(30)\n    return 'woke'\n",
    "urandom_forever": """
def attack(params, ctx):
    with open("/dev/urandom", "rb") as source:
        while True:
            source.read(1 << 16)
""",
}


@pytest.mark.parametrize("kind", sorted(TIME_BOMBS))
def test_time_bomb_times_out(sandbox, run, kind):
    timeout_ms = 1000
    result = run(TIME_BOMBS[kind], timeout_ms=timeout_ms)
    assert result.status == "timeout" and result.error_type == "TIMEOUT", result
    assert result.elapsed <= timeout_ms / 1000 + 1.0, result.elapsed
    host_intact(sandbox, result)


# -- the filesystem: writes -------------------------------------------------------------

WRITE_PLUGIN = """
def attack(params, ctx):
    path, mode = params["path"], params["mode"]
    def do():
        if mode == "sparse":
            with open(path, "wb") as handle:
                handle.seek(2 ** 40)
                handle.write(b"x")
        elif mode == "open_append":
            with open(path, "ab") as handle:  # opening for write is the attack; writes nothing
                handle.write(b"")
        elif mode == "mkdir":
            _os.makedirs(path)
        else:
            with open(path, "w") as handle:
                handle.write("pwned")
        return _os.path.exists(path)
    return attempt(do)
"""

WRITE_TARGETS = {
    # name: (path inside the sandbox, mode, host paths that must not appear)
    "cwd": (f"pwned-cwd-{TOKEN}", "create", [f"/pwned-cwd-{TOKEN}", str(ROOT / f"pwned-cwd-{TOKEN}"), os.path.join(os.getcwd(), f"pwned-cwd-{TOKEN}")]),
    "tmp": (f"/tmp/{TOKEN}", "create", [f"/tmp/{TOKEN}"]),
    "dev_shm": (f"/dev/shm/{TOKEN}", "create", [f"/dev/shm/{TOKEN}"]),
    "project_tree": ("/work/main/pwned", "create", ["/work/main/pwned"]),
    "etc": (f"/etc/{TOKEN}", "create", [f"/etc/{TOKEN}"]),
    "sparse_1tib": (f"/tmp/{TOKEN}-sparse", "sparse", [f"/tmp/{TOKEN}-sparse"]),
    "dotdot": (f"../../../../../../tmp/{TOKEN}-dotdot", "create", [f"/tmp/{TOKEN}-dotdot"]),
    "stdlib_new_module": (os.path.join(STDLIB, f"pwned_{TOKEN.replace('-', '_')}.py"), "create", [os.path.join(STDLIB, f"pwned_{TOKEN.replace('-', '_')}.py")]),
    "stdlib_mkdir": (os.path.join(STDLIB, f"pwned-dir-{TOKEN}"), "mkdir", [os.path.join(STDLIB, f"pwned-dir-{TOKEN}")]),
    "root_dir": (f"/{TOKEN}", "create", [f"/{TOKEN}"]),
}


@pytest.mark.parametrize("target", sorted(WRITE_TARGETS))
def test_write_escape(sandbox, run, target):
    path, mode, host_paths = WRITE_TARGETS[target]
    for host_path in host_paths:
        assert not os.path.lexists(host_path), f"{host_path} exists before the test"
    try:
        result = run(WRITE_PLUGIN, params={"path": path, "mode": mode})
        assert result.status == "success", result
        assert result.result["blocked"] is True, result.result
        for host_path in host_paths:
            assert not os.path.lexists(host_path), f"the plugin created {host_path} on the host"
        host_intact(sandbox, result)
    finally:
        for host_path in host_paths:
            if os.path.isdir(host_path) and not os.path.islink(host_path):
                shutil.rmtree(host_path, ignore_errors=True)
            elif os.path.lexists(host_path):
                os.unlink(host_path)


def test_open_stdlib_file_for_write(sandbox, run):
    target = os.path.join(STDLIB, "this.py")
    before = os.stat(target)
    result = run(WRITE_PLUGIN, params={"path": target, "mode": "open_append"})
    after = os.stat(target)
    assert result.status == "success", result
    assert result.result["blocked"] is True, result.result
    assert (after.st_mtime_ns, after.st_size, after.st_mode) == (before.st_mtime_ns, before.st_size, before.st_mode)
    host_intact(sandbox, result)


# -- the filesystem: reads ----------------------------------------------------------------

READ_PLUGIN = """
def attack(params, ctx):
    path = params["path"].format(ppid=_os.getppid(), pid=_os.getpid())
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 16)
    except BaseException as error:
        return {"blocked": True, "path": path, "error": f"{type(error).__name__}: {error}"[:300]}
    report = {"blocked": False, "path": path, "nbytes": len(data)}
    if params.get("return_data"):
        report["data"] = data.decode("utf-8", "replace")
    return report
"""

READ_TARGETS = {
    # name: (path, whether the plugin may return what it read)
    "sqlite_db": (str(ROOT / "var" / "db.sqlite3"), False),
    "settings_py": (str(ROOT / "executor_project" / "settings.py"), False),
    "secret_key_file": (str(ROOT / "var" / "secret_key"), False),
    "etc_passwd": ("/etc/passwd", True),
    "etc_shadow": ("/etc/shadow", False),
    "proc_1_environ": ("/proc/1/environ", True),
    "proc_1_cmdline": ("/proc/1/cmdline", True),
    "proc_self_environ": ("/proc/self/environ", True),
    "proc_parent_environ": ("/proc/{ppid}/environ", True),
    "proc_parent_cmdline": ("/proc/{ppid}/cmdline", True),
    "proc_self_status": ("/proc/self/status", True),
    "root_bashrc": ("/root/.bashrc", True),
    "host_canary_file": (None, True),  # the fixture's file holding the canary
    "cgroup_tasks": ("/sys/fs/cgroup/memory/tasks", True),
    "dotdot_passwd": ("../../../../../../etc/passwd", True),
    "dev_mem": ("/dev/mem", False),
}


@pytest.mark.parametrize("target", sorted(READ_TARGETS))
def test_read_host_file(sandbox, run, target):
    path, return_data = READ_TARGETS[target]
    if path is None:
        path = str(sandbox.canary_file)
    result = run(READ_PLUGIN, params={"path": path, "return_data": return_data})
    assert result.status == "success", result
    assert result.result["blocked"] is True, {k: v for k, v in result.result.items() if k != "data"}
    text = result_text(result)
    for marker in (CANARY, "SQLite format 3", "root:x:0:0", "SECRET_KEY"):
        assert marker not in text
    host_intact(sandbox, result)


def test_listing_root_shows_a_minimal_tree(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    report = {"root": sorted(_os.listdir("/"))}
    for name in ("/home", "/etc", "/work", "/proc", "/sys", "/var", "/tmp", "/run", "/boot", "/opt", "/srv", "/mnt", "/bin", "/sbin"):
        report[name] = _os.path.exists(name)
    report["dotdot"] = sorted(_os.listdir("/.."))
    report["dev"] = sorted(_os.listdir("/dev"))
    return report
"""
    )
    assert result.status == "success", result
    report = result.result
    forbidden = {"home", "etc", "work", "proc", "sys", "var", "tmp", "run", "boot", "opt", "srv", "mnt", "bin", "sbin"}
    assert not forbidden & set(report["root"]), report["root"]
    assert len(report["root"]) <= 6, report["root"]
    assert report["dotdot"] == report["root"]
    assert not any(report[f"/{name}"] for name in forbidden), report
    assert set(report["dev"]) <= {"null", "zero", "urandom", "random"}, report["dev"]
    host_intact(sandbox, result)


def test_root_home_is_not_visible(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    report = {"listing": attempt(lambda: sorted(_os.listdir("/root")))}
    for name in (".bashrc", ".profile", ".gitconfig", ".config", ".cargo"):
        report[name] = _os.path.exists("/root/" + name)
    return report
"""
    )
    assert result.status == "success", result
    report = result.result
    # Only the path down to the interpreter's standard library may show.
    if not report["listing"]["blocked"]:
        assert set(eval(report["listing"]["value"])) <= {".pyenv", ".local"}, report["listing"]
    assert not any(report[name] for name in (".bashrc", ".profile", ".gitconfig", ".config", ".cargo")), report
    host_intact(sandbox, result)


def test_environment_is_empty(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    return {"environ": dict(_os.environ), "canary": _os.getenv("HOST_CANARY"),
            "libc_getenv": bool(libc().getenv(b"HOST_CANARY"))}
"""
    )
    assert result.status == "success", result
    assert result.result == {"environ": {}, "canary": None, "libc_getenv": False}
    host_intact(sandbox, result)


# -- the network ------------------------------------------------------------------------

SOCKET_ATTACKS = {
    "tcp_connect": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("127.0.0.1", a["tcp_port"]))
    s.sendall(b"pwned")
""",
    "udp_send": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", ("127.0.0.1", a["udp_port"]))
""",
    "ipv6_connect": """
    s = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("::1", a["tcp6_port"] or 80))
""",
    "unix_path_connect": """
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(a["unix_path"])
    s.sendall(b"pwned")
""",
    "unix_path_dgram_via_socketpair": """
    s, _ = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["unix_dgram_path"])
""",
    "abstract_host_socket": """
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["abstract_name"].encode("latin-1"))
""",
    "abstract_host_via_socketpair": """
    s, _ = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["abstract_name"].encode("latin-1"))
""",
    "netlink": """
    s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 0)
    s.bind((0, 0))
""",
    "raw_inet": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_RAW, _socket.IPPROTO_ICMP)
""",
    "packet": """
    s = _socket.socket(_socket.AF_PACKET, _socket.SOCK_RAW, _socket.htons(3))
""",
    "vsock": """
    s = _socket.socket(40, _socket.SOCK_STREAM)
""",
    "socketpair_inet": """
    s = _socket.socketpair(_socket.AF_INET, _socket.SOCK_STREAM)
""",
    "libc_socket_via_ctypes": """
    r = c_call("socket", 2, 1, 0)
    if r["ret"] == -1:
        raise OSError(r["errno"], r["errname"])
    r2 = sys_call(41, 2, 2, 0)
    if r2["ret"] == -1:
        raise OSError(r2["errno"], r2["errname"])
""",
    "dns_lookup": """
    return _socket.getaddrinfo("example.com", 80)
""",
}


@pytest.mark.parametrize("kind", sorted(SOCKET_ATTACKS))
def test_socket_attack(sandbox, run, kind):
    sandbox.listeners.received()  # drain
    source = "def attack(params, ctx):\n    a = params\n    def go():\n" + "\n".join(
        "    " + line for line in SOCKET_ATTACKS[kind].strip("\n").splitlines()
    ) + "\n    return attempt(go)\n"
    result = run(source, params=sandbox.listeners.addresses())
    assert result.status == "success", result
    assert result.result["blocked"] is True, result.result
    time.sleep(0.05)
    assert sandbox.listeners.received() == {}, "a host listener received something"
    host_intact(sandbox, result)


FOREIGN_ABI_ATTACKS = {
    # socket() through the x32 ABI (nr | 0x40000000), which a filter written for
    # x86_64 numbers could miss.
    "x32_socket": """
def attack(params, ctx):
    return sys_call(0x40000000 + 41, 2, 1, 0)
""",
    # socket() through the i386 ABI (int 0x80, nr 359), same reason.
    "int80_socket": """
import mmap
def attack(params, ctx):
    code = bytes([0xB8]) + (359).to_bytes(4, "little") + bytes([0xBB, 2, 0, 0, 0, 0xB9, 1, 0, 0, 0, 0x31, 0xD2, 0xCD, 0x80, 0xC3])
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    function = _ctypes.CFUNCTYPE(_ctypes.c_int)(_ctypes.addressof(_ctypes.c_char.from_buffer(page)))
    return {"ret": function()}
""",
}


@pytest.mark.parametrize("kind", sorted(FOREIGN_ABI_ATTACKS))
def test_foreign_syscall_abi(sandbox, run, kind):
    sandbox.listeners.received()
    result = run(FOREIGN_ABI_ATTACKS[kind])
    if result.status == "success":
        assert result.result["ret"] < 0, result.result
    else:
        assert result.error_type == "WORKER_CRASHED", result  # killed by the filter (SIGSYS)
    assert sandbox.listeners.received() == {}
    host_intact(sandbox, result)


# -- creating processes, running programs ---------------------------------------------------

PROCESS_ATTACKS = {
    "subprocess_run_true": "import subprocess\n    return subprocess.run(['true']).returncode",
    "subprocess_python": "import subprocess, sys\n    return subprocess.run([sys.executable, '-c', 'print(1)']).returncode",
    "os_system_id": "rc = _os.system('id')\n    if rc != 0:\n        raise OSError(f'system() returned {rc}')\n    return rc",
    "os_execv": "import sys\n    _os.execv(sys.executable, [sys.executable, '-c', 'pass'])",
    "os_posix_spawn": "import sys\n    return _os.posix_spawn(sys.executable, [sys.executable, '-c', 'pass'], {})",
    "pty_spawn": "import pty, sys\n    return pty.spawn([sys.executable, '-c', 'pass'])",
    "os_forkpty": "pid, fd = _os.forkpty()\n    if pid == 0:\n        _os._exit(0)\n    return pid",
    "multiprocessing_process": "import multiprocessing\n    p = multiprocessing.Process(target=print)\n    p.start()\n    p.join()\n    return p.exitcode",
    "libc_fork": "r = c_call('fork')\n    if r['ret'] == 0:\n        _os._exit(0)\n    if r['ret'] == -1:\n        raise OSError(r['errno'], r['errname'])\n    return r",
    "raw_clone_syscall": "r = sys_call(56, 17, 0, 0, 0, 0)\n    if r['ret'] == 0:\n        _os._exit(0)\n    if r['ret'] == -1:\n        raise OSError(r['errno'], r['errname'])\n    return r",
    "raw_clone3_syscall": "r = sys_call(435, 0, 0)\n    if r['ret'] == 0:\n        _os._exit(0)\n    if r['ret'] == -1:\n        raise OSError(r['errno'], r['errname'])\n    return r",
}


@pytest.mark.parametrize("kind", sorted(PROCESS_ATTACKS))
def test_process_creation(sandbox, run, kind):
    source = "def attack(params, ctx):\n    def go():\n        " + PROCESS_ATTACKS[kind].replace("\n    ", "\n        ") + "\n    return attempt(go)\n"
    result = run(source)
    assert result.status == "success", result
    assert result.result["blocked"] is True, result.result
    host_intact(sandbox, result)


# -- privileged calls through ctypes ---------------------------------------------------------

LIBC_ATTACKS = {
    "unshare_newuser": "c_call('unshare', _ctypes.c_int(0x10000000))",
    "setuid_0": "c_call('setuid', _ctypes.c_int(0))",
    "setresuid_0": "c_call('setresuid', _ctypes.c_int(0), _ctypes.c_int(0), _ctypes.c_int(0))",
    "mount_tmpfs": "c_call('mount', b'none', b'/usr', b'tmpfs', _ctypes.c_ulong(0), None)",
    "ptrace_attach_init": "c_call('ptrace', _ctypes.c_long(16), _ctypes.c_long(1), None, None)",
    "chroot": "c_call('chroot', b'/usr')",
    "setns": "c_call('setns', _ctypes.c_int(0), _ctypes.c_int(0))",
    "sethostname": "c_call('sethostname', b'pwned', _ctypes.c_size_t(5))",
}


@pytest.mark.parametrize("kind", sorted(LIBC_ATTACKS))
def test_libc_privileged_call(sandbox, run, kind):
    result = run(f"def attack(params, ctx):\n    report = {LIBC_ATTACKS[kind]}\n    report['uid'] = _os.getuid()\n    report['euid'] = _os.geteuid()\n    return report\n")
    assert result.status == "success", result
    report = result.result
    assert report["ret"] == -1, report
    assert report["uid"] != 0 and report["euid"] != 0, report
    host_intact(sandbox, result)


NAMESPACE_ATTACKS = {
    "unshare_user": ("unshare", 0x10000000),
    "unshare_net": ("unshare", 0x40000000),
    "unshare_mount": ("unshare", 0x00020000),
    "unshare_pid": ("unshare", 0x20000000),
    "unshare_user_mount_raw": ("raw_unshare", 0x10000000 | 0x00020000),
    "clone_thread_newuser": ("clone", 0x00010000 | 0x00000800 | 0x00000100 | 0x10000000),
}


@pytest.mark.parametrize("kind", sorted(NAMESPACE_ATTACKS))
def test_create_namespace(sandbox, run, kind):
    how, flags = NAMESPACE_ATTACKS[kind]
    result = run(
        """
def attack(params, ctx):
    how, flags = params["how"], params["flags"]
    if how == "unshare":
        return c_call("unshare", _ctypes.c_int(flags))
    if how == "raw_unshare":
        return sys_call(272, flags)
    r = sys_call(56, flags, 0, 0, 0, 0)  # CLONE_THREAD|CLONE_VM|CLONE_SIGHAND|CLONE_NEWUSER
    return r
""",
        params={"how": how, "flags": flags},
    )
    assert result.status == "success", result
    assert result.result["ret"] == -1, result.result
    host_intact(sandbox, result)


PTRACE_ATTACKS = {
    "attach_init": (16, 1),
    "seize_init": (0x4206, 1),
    "traceme": (0, 0),
    "peekdata_init": (2, 1),
}


@pytest.mark.parametrize("kind", sorted(PTRACE_ATTACKS))
def test_ptrace(sandbox, run, kind):
    request, pid = PTRACE_ATTACKS[kind]
    result = run(
        """
def attack(params, ctx):
    r = c_call("ptrace", _ctypes.c_long(params["request"]), _ctypes.c_long(params["pid"]), None, None)
    vm = sys_call(310, 1, 0, 0, 0, 0, 0)  # process_vm_readv(1, ...)
    return {"ptrace": r, "process_vm_readv": vm}
""",
        params={"request": request, "pid": pid},
    )
    assert result.status == "success", result
    assert result.result["ptrace"]["ret"] == -1 and result.result["ptrace"]["errno"] in (1, 3, 38), result.result
    assert result.result["process_vm_readv"]["ret"] == -1 and result.result["process_vm_readv"]["errname"] == "EPERM", result.result
    host_intact(sandbox, result)


# -- dangerous system calls -------------------------------------------------------------------

DANGEROUS_SYSCALLS = {
    # name: (x86_64 number, arguments)
    "io_uring_setup": (425, (8, 0)),
    "bpf": (321, (0, 0, 0)),
    "keyctl": (250, (0, -3, 0)),
    "add_key": (248, (0, 0, 0, 0, -3)),
    "request_key": (249, (0, 0, 0, 0)),
    "userfaultfd": (323, (0,)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "personality": (135, (0xFFFFFFFF,)),
    "pidfd_open_init": (434, (1, 0)),
    "open_by_handle_at": (304, (0, 0, 0)),
    "fanotify_init": (300, (0, 0)),
    "syslog_read_all": (103, (3, 0, 0)),
    "reboot_bad_magic": (169, (0, 0, 0, 0)),
    "kexec_load": (246, (0, 0, 0, 0)),
    "init_module": (175, (0, 0, 0)),
    "swapon": (167, (0, 0)),
    "memfd_secret": (447, (0,)),
    "mount_setattr": (442, (-1, 0, 0, 0, 0)),
    "fsopen": (430, (0, 0)),
    "setns": (308, (0, 0)),
    "shmget": (29, (0, 4096, 0o1666)),
    "mq_open": (240, (0, 0, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(DANGEROUS_SYSCALLS))
def test_dangerous_syscall_refused(sandbox, run, name):
    number, args = DANGEROUS_SYSCALLS[name]
    result = run("def attack(params, ctx):\n    return sys_call(params['nr'], *params['args'])\n", params={"nr": number, "args": list(args)})
    assert result.status == "success", result
    assert result.result["ret"] == -1, result.result
    assert result.result["errname"] in ("EPERM", "ENOSYS", "EACCES"), result.result
    host_intact(sandbox, result)


def test_proc_self_mem_write(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in ("/proc/self/mem", "/proc/1/mem", "/proc/{}/mem".format(_os.getppid())):
        def go(path=path):
            fd = _os.open(path, _os.O_RDWR)
            _os.lseek(fd, 0x400000, 0)
            return _os.write(fd, b"\\xcc")
        out[path] = attempt(go)
    return out
"""
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    host_intact(sandbox, result)


def test_symlink_and_hardlink(sandbox, run):
    targets = [os.path.join(STDLIB, f"hostile-link-{TOKEN}"), f"/tmp/{TOKEN}-link", f"/{TOKEN}-link"]
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["sym:" + path] = attempt(_os.symlink, "/etc/passwd", path)
        out["hard:" + path] = attempt(_os.link, _os.__file__, path)
    out["relative"] = attempt(_os.symlink, "/", "escape-link")
    return out
""",
        params={"targets": targets},
    )
    try:
        assert result.status == "success", result
        assert all(report["blocked"] for report in result.result.values()), result.result
        for path in targets:
            assert not os.path.lexists(path), f"{path} appeared on the host"
        host_intact(sandbox, result)
    finally:
        for path in targets:
            if os.path.lexists(path):
                os.unlink(path)


def test_mknod_and_fifo(sandbox, run):
    targets = [os.path.join(STDLIB, f"hostile-node-{TOKEN}"), f"/tmp/{TOKEN}-node", f"/{TOKEN}-fifo"]
    result = run(
        """
import stat
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["chr:" + path] = attempt(_os.mknod, path, stat.S_IFCHR | 0o666, _os.makedev(1, 3))
        out["fifo:" + path] = attempt(_os.mkfifo, path)
    return out
""",
        params={"targets": targets},
    )
    try:
        assert result.status == "success", result
        assert all(report["blocked"] for report in result.result.values()), result.result
        for path in targets:
            assert not os.path.lexists(path)
        host_intact(sandbox, result)
    finally:
        for path in targets:
            if os.path.lexists(path):
                os.unlink(path)


def test_chmod_and_chown_of_visible_files(sandbox, run):
    targets = [os.path.join(STDLIB, "this.py"), STDLIB]
    before = {path: os.stat(path) for path in targets}
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["chmod:" + path] = attempt(_os.chmod, path, 0o777)
        out["chown:" + path] = attempt(_os.chown, path, _os.getuid(), _os.getgid())
        out["utime:" + path] = attempt(_os.utime, path, (0, 0))
    return out
""",
        params={"targets": targets},
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    for path in targets:
        after = os.stat(path)
        assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before[path].st_mode, before[path].st_uid, before[path].st_mtime_ns)
    host_intact(sandbox, result)


# -- signals, sessions, priorities ----------------------------------------------------------

KILL_ATTACKS = {
    "kill_pid_1": "out['kill_1'] = attempt(_os.kill, 1, signal.SIGKILL)",
    "kill_parent": "out['kill_parent'] = attempt(_os.kill, _os.getppid(), signal.SIGKILL)",
    "kill_minus_1": "out['kill_all'] = attempt(_os.kill, -1, signal.SIGKILL)",
    "stop_pid_1": "out['stop_1'] = attempt(_os.kill, 1, signal.SIGSTOP)",
    "scan_and_kill_every_pid": """found = []
    for pid in range(1, 32768):
        if pid == _os.getpid():
            continue
        try:
            _os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        found.append(pid)
    out['found'] = found
    for pid in found:
        out[f'kill_{pid}'] = attempt(_os.kill, pid, signal.SIGKILL)""",
}


@pytest.mark.parametrize("kind", sorted(KILL_ATTACKS))
def test_kill_while_other_run_in_flight(sandbox, run, run_b, kind):
    thread, box = in_background(
        lambda: run_b("import time\ndef attack(params, ctx):\n    time.sleep(1.5)\n    return 'b-finished'\n", timeout_ms=5000)
    )
    time.sleep(0.3)
    result = run(f"import signal\ndef attack(params, ctx):\n    out = {{}}\n    {KILL_ATTACKS[kind]}\n    return out\n")
    thread.join(10)
    assert "error" not in box, box.get("error")
    other = box["result"]
    assert result.status == "success", result
    attempts = {k: v for k, v in result.result.items() if k != "found"}
    if kind != "kill_minus_1":  # kill(-1) may legitimately "succeed" on nothing but the caller's own
        assert all(report["blocked"] for report in attempts.values()), result.result
    assert other.status == "success" and other.result == "b-finished", other
    host_intact(sandbox, result)
    host_intact(sandbox, other)


def test_raise_rlimits(sandbox, run):
    result = run(
        """
import resource
def attack(params, ctx):
    inf = resource.RLIM_INFINITY
    out = {}
    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_MEMLOCK"):
        which = getattr(resource, name)
        before = resource.getrlimit(which)
        out[name] = attempt(resource.setrlimit, which, (inf, inf))
        out[name]["unchanged"] = resource.getrlimit(which) == before
    out["prlimit_init"] = attempt(resource.prlimit, 1, resource.RLIMIT_AS, (inf, inf))
    return out
"""
    )
    assert result.status == "success", result
    for name, report in result.result.items():
        assert report["blocked"], (name, report)
        if name != "prlimit_init":
            assert report["unchanged"], (name, report)
    host_intact(sandbox, result)


def test_realtime_priority_and_nice(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    return {
        "fifo": attempt(_os.sched_setscheduler, 0, _os.SCHED_FIFO, _os.sched_param(50)),
        "rr": attempt(_os.sched_setscheduler, 0, _os.SCHED_RR, _os.sched_param(1)),
        "nice": attempt(_os.nice, -10),
        "setpriority": attempt(_os.setpriority, _os.PRIO_PROCESS, 0, -20),
        "ioprio_rt": {"blocked": sys_call(251, 1, 0, (1 << 13) | 0)["ret"] == -1},
    }
"""
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    host_intact(sandbox, result)


def test_no_capabilities_and_no_new_privs(sandbox, run):
    result = run(
        """
class Header(_ctypes.Structure):
    _fields_ = [("version", _ctypes.c_uint32), ("pid", _ctypes.c_int)]
class Data(_ctypes.Structure):
    _fields_ = [("effective", _ctypes.c_uint32), ("permitted", _ctypes.c_uint32), ("inheritable", _ctypes.c_uint32)]
def attack(params, ctx):
    header = Header(0x20080522, 0)
    data = (Data * 2)()
    ret = libc().capget(_ctypes.byref(header), data)
    caps = [(d.effective, d.permitted, d.inheritable) for d in data]
    nnp = libc().prctl(39, 0, 0, 0, 0)
    return {"ret": ret, "caps": caps, "no_new_privs": nnp, "uid": _os.getuid(), "gid": _os.getgid(), "groups": _os.getgroups()}
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report["ret"] == 0 and report["caps"] == [[0, 0, 0], [0, 0, 0]], report
    assert report["no_new_privs"] == 1, report
    assert report["uid"] >= UID_BASE and report["gid"] >= UID_BASE and report["groups"] == [], report
    host_intact(sandbox, result)


def test_hostname_is_not_the_hosts(sandbox, run):
    result = run("def attack(params, ctx):\n    return {'hostname': _socket.gethostname(), 'uname': list(_os.uname())}\n")
    assert result.status == "success", result
    assert result.result["hostname"] != socket.gethostname(), result.result
    host_intact(sandbox, result)


def test_setsid_setpgid_are_harmless(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    return {"setsid": attempt(_os.setsid), "setpgid": attempt(_os.setpgid, 0, 0), "setpgrp": attempt(_os.setpgrp),
            "getsid": _os.getsid(0), "pid": _os.getpid()}
"""
    )
    assert result.status == "success", result
    assert result.result["getsid"] == result.result["pid"]  # already its own session, nothing changed
    follow = run(BENIGN, params={"n": 1})
    assert follow.status == "success" and follow.result == {"ok": True, "echo": {"n": 1}}
    host_intact(sandbox, result)


ALARMS = {
    "with_handler": """
import signal, time
def attack(params, ctx):
    fired = []
    signal.signal(signal.SIGALRM, lambda *a: fired.append(True))
    signal.alarm(1)
    time.sleep(1.3)
    return {"fired": bool(fired)}
""",
    "default_action": """
import signal, time
def attack(params, ctx):
    signal.alarm(1)
    time.sleep(1.8)
    return {"survived": True}
""",
}


@pytest.mark.parametrize("kind", sorted(ALARMS))
def test_signal_alarm_is_harmless(sandbox, run, kind):
    result = run(ALARMS[kind], timeout_ms=2500)
    if kind == "with_handler":
        assert result.status == "success" and result.result == {"fired": True}, result
    else:
        assert result.error_type == "WORKER_CRASHED", result  # SIGALRM ended the child only
    follow = run(BENIGN)
    assert follow.status == "success", follow
    host_intact(sandbox, result)


# -- output, logs, the channel ----------------------------------------------------------------


def test_huge_result(sandbox, run):
    with PeakRss() as rss:
        result = run("def attack(params, ctx):\n    return 'x' * (2 * 1024 * 1024)\n")
    assert result.error_type == "OUTPUT_LIMIT_EXCEEDED", result
    assert result.result_json is None
    assert rss.growth_mb < 32
    host_intact(sandbox, result)


def test_huge_logs_are_truncated(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    print("y" * 5_000_000)
    for _ in range(50_000):
        print("z" * 100)
        ctx.log("w" * 100)
    return "done"
"""
    )
    assert result.status == "success" and result.result == "done", result
    assert result.logs_truncated is True
    assert sum(len(line.encode()) for line in result.logs) <= 64 * 1024 + 1024
    host_intact(sandbox, result)


LOG_CAP_BYPASS = {
    # The plugin raises the cap of its own (in-process) log buffer.
    "runtime_cap_raised": """
import sys
def attack(params, ctx):
    for holder in (getattr(sys.stdout, "_buffer", None), getattr(ctx, "_logs", None)):
        if holder is not None and hasattr(holder, "max_bytes"):
            holder.max_bytes = 10 ** 9
    for _ in range(3000):
        print("q" * 1000)
    return "done"
""",
    # The plugin writes its own result frame carrying 3 MB of logs.
    "forged_result_frame": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": "1",
                          "logs": ["q" * 1000] * 3000, "logsTruncated": False})
    _os._exit(0)
""",
}


@pytest.mark.parametrize("kind", sorted(LOG_CAP_BYPASS))
def test_log_cap_is_enforced_by_the_host(sandbox, run, kind):
    result = run(LOG_CAP_BYPASS[kind])
    total = sum(len(line.encode()) for line in result.logs)
    assert total <= 64 * 1024 + 1024, f"host accepted {total} bytes of logs (cap 64 KiB), status={result.status}, truncated={result.logs_truncated}"
    host_intact(sandbox, result)


def test_channel_flood_with_raw_bytes(sandbox, run):
    with PeakRss() as rss:
        result = run(
            """
def attack(params, ctx):
    errors = []
    for fd in range(3, 20):
        try:
            _os.write(fd, b"x" * 10 ** 7)
        except OSError as error:
            errors.append(f"{fd}: {error}")
    return errors
""",
            timeout_ms=1500,
        )
    assert result.error_type in {"OUTPUT_LIMIT_EXCEEDED", "PLUGIN_ERROR", "WORKER_CRASHED"}, result
    assert rss.growth_mb < 48, f"host grew by {rss.growth_mb:.0f} MiB"
    host_intact(sandbox, result)


def test_egress_request_flood_without_reading_replies(sandbox, run):
    """The child sends `http` frames as fast as it can and never reads the
    replies: what the host buffers for it must stay bounded."""
    handled = []

    def egress(frame):
        handled.append(1)
        return {"ok": False, "kind": "denied", "message": "network access is not enabled"}

    with PeakRss() as rss:
        result = run(
            """
def attack(params, ctx):
    frame = _json.dumps({"op": "http", "method": "GET", "url": "http://x/"}).encode()
    burst = (_struct.pack("!I", len(frame)) + frame) * 1000
    chan = channel(ctx)
    while True:
        chan.sendall(burst)
""",
            timeout_ms=2000,
            egress_handler=egress,
        )
    assert result.status in ("error", "timeout"), result
    assert rss.growth_mb < 16, f"host buffered {rss.growth_mb:.0f} MiB of replies for {len(handled)} unread requests in 2 s"
    host_intact(sandbox, result)


def test_deep_recursion(sandbox, run):
    result = run(
        """
import sys
def attack(params, ctx):
    sys.setrecursionlimit(10 ** 6)
    def dive(n):
        return dive(n + 1) + 1
    return dive(0)
"""
    )
    # Python 3.11 frames live on the heap: the dive may end in the memory cap first.
    assert result.error_type in {"WORKER_CRASHED", "PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED"}, result
    follow = run(BENIGN)
    assert follow.status == "success"
    host_intact(sandbox, result)


def test_segfault_through_ctypes(sandbox, run):
    result = run("def attack(params, ctx):\n    return _ctypes.string_at(0)\n")
    assert result.error_type == "WORKER_CRASHED", result
    assert "SIGSEGV" in result.message
    host_intact(sandbox, result)


ODD_TEXT = {
    "nul_in_result": "def attack(params, ctx):\n    return {'a\\x00b': 'x\\x00y', 'list': ['\\x00'] * 3}\n",
    "nul_in_logs": "def attack(params, ctx):\n    print('a\\x00b')\n    ctx.log('\\x00\\x00')\n    return 1\n",
    "surrogate_in_result": "def attack(params, ctx):\n    return 'x\\ud800y'\n",
    "surrogate_in_logs": "def attack(params, ctx):\n    print('a\\udcffb')\n    ctx.log('\\ud800')\n    return 1\n",
    "surrogate_in_exception": "def attack(params, ctx):\n    raise ValueError('bad \\ud800 text')\n",
    "invalid_utf8_bytes_in_logs": "import sys\ndef attack(params, ctx):\n    sys.stdout.write(b'\\xff\\xfe\\x00'.decode('utf-8', 'surrogateescape') + '\\n')\n    return 1\n",
}


@pytest.mark.parametrize("kind", sorted(ODD_TEXT))
def test_nul_and_surrogates(sandbox, run, kind):
    result = run(ODD_TEXT[kind])
    if result.status == "success":
        json.loads(result.result_json)
    else:
        assert result.error_type in CONTAINED_ERRORS, result
    assert utf8_clean(result) == [], f"fields with lone surrogates reached the host: {utf8_clean(result)}"
    if kind == "nul_in_result":
        # NUL can't be stored by every database (PostgreSQL's jsonb refuses it):
        # the host replaces it, like a lone surrogate, with U+FFFD.
        assert result.result == {"a\ufffdb": "x\ufffdy", "list": ["\ufffd"] * 3}
    host_intact(sandbox, result)


FORGED_FRAMES = {
    # A result frame whose resultJson decodes (on the host) to a lone surrogate.
    "surrogate_result_json": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": '"a\\ud800"', "logs": []})
    _os._exit(0)
""",
    # An error frame whose message and logs carry lone surrogates and NULs.
    "surrogate_message_and_logs": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "error", "errorType": "PLUGIN_ERROR",
                          "message": "m\\ud800", "traceback": "t\\udfff", "logs": ["x\\udfff", "nul\\x00"]})
    _os._exit(0)
""",
    # A frame of deeply nested JSON (200 kB, under the frame cap).
    "nested_json_frame": """
import time
def attack(params, ctx):
    send_raw_frame(ctx, ("[" * 100000 + "]" * 100000).encode())
    time.sleep(0.3)
    return "after"
""",
    # A result whose resultJson is deeply nested JSON (200 kB, under the result cap).
    "nested_result_json": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": "[" * 100000 + "]" * 100000, "logs": []})
    _os._exit(0)
""",
    # Frames that are valid JSON but not the shapes the host expects.
    "wrong_shapes": """
def attack(params, ctx):
    for message in ([1, 2], "text", 7, None, {"op": "http"}, {"op": "result", "status": "success", "resultJson": 5, "logs": "nope"},
                    {"op": "result", "status": "success", "resultJson": "{\\"ok\\": 1}", "logs": [{"a": 1}, [2], None], "logsTruncated": "yes"}):
        send_json_frame(ctx, message)
    _os._exit(0)
""",
}


@pytest.mark.parametrize("kind", sorted(FORGED_FRAMES))
def test_forged_frames_do_not_break_the_host(sandbox, fresh_client, kind):
    try:
        result = _run_on(fresh_client, plugin(FORGED_FRAMES[kind]), timeout_ms=2000)
    except Exception as error:  # the host interface must never raise for what a plugin does
        pytest.fail(f"ForkServerClient.run raised {type(error).__name__}: {str(error)[:200]}")
    assert result.status in ("success", "error"), result
    if result.status == "success":
        json.loads(result.result_json)
    assert utf8_clean(result) == [], f"fields with lone surrogates reached the host: {utf8_clean(result)}"
    # The client must still report the *next* runs correctly (no stale report).
    follow = _run_on(fresh_client, BENIGN, params={"n": 1})
    assert follow.status == "success" and follow.result == {"ok": True, "echo": {"n": 1}}, follow
    slow = _run_on(fresh_client, SPIN, timeout_ms=500)
    assert slow.error_type == "TIMEOUT", slow
    after = _run_on(fresh_client, BENIGN, params={"n": 2})
    assert after.status == "success" and after.result == {"ok": True, "echo": {"n": 2}}, after
    host_intact(sandbox, after)


FAKE_RESULT_THEN = {
    # A plugin may answer whatever it likes; what it does *after* a forged
    # answer must not turn into a host-side success that hides a crash the
    # host saw, nor leave anything running.
    "segfault": ("_ctypes.string_at(0)", {"WORKER_CRASHED"}),
    "abort": ("_os.abort()", {"WORKER_CRASHED"}),
    "exit_nonzero": ("_os._exit(7)", {"WORKER_CRASHED"}),
}


@pytest.mark.parametrize("kind", sorted(FAKE_RESULT_THEN))
def test_fake_result_frame_then_crash(sandbox, run, kind):
    ending, expected = FAKE_RESULT_THEN[kind]
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '{\"fake\": true}', 'logs': ['forged']})\n"
        f"    {ending}\n",
        timeout_ms=1000,
    )
    # Contained either way: the crash is reported, or the forged answer (which
    # the plugin could have returned normally) is taken as its result.
    if result.status == "success":
        assert result.result == {"fake": True}, result
    else:
        assert result.error_type in expected, result
    assert result.elapsed < 1.0, result.elapsed
    host_intact(sandbox, result)


def test_fake_result_frame_then_run_past_the_deadline(sandbox, run):
    """A forged answer without closing the channel, then a busy loop: the
    child is killed at the deadline, and the run must be reported as a
    TIMEOUT, not as the forged success."""
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '{\"fake\": true}', 'logs': []})\n"
        "    while True:\n"
        "        pass\n",
        timeout_ms=1000,
    )
    assert result.error_type == "TIMEOUT", f"killed at the deadline but reported {result.status}: {result.result_json}"
    host_intact(sandbox, result)


def test_child_does_not_outlive_its_answer(sandbox, run):
    """Answer, shut the channel, keep running: the host may take the answer,
    but the child must not go on running (unaccounted) after the run is over."""
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '\"early\"', 'logs': []})\n"
        "    channel(ctx).shutdown(_socket.SHUT_RDWR)\n"
        "    while True:\n"
        "        pass\n",
        timeout_ms=3000,
    )
    assert result.status in ("success", "error", "timeout")
    assert not result.leftovers, f"the child was still running 1 s after the host had its answer: {result.leftovers}"
    host_intact(sandbox, result)


def test_plugin_cannot_forge_its_resource_usage(sandbox, run):
    """cpu_ms / max_rss_bytes are what quotas and bills are based on: a plugin
    that burns CPU must not be able to report that it used none."""
    result = run(
        "import time\n"
        "def attack(params, ctx):\n"
        "    end = time.process_time() + 0.4\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '1', 'logs': [], 'usage': {'cpuMs': 0, 'maxRssBytes': 0}})\n"
        "    channel(ctx).shutdown(_socket.SHUT_RDWR)\n"
        "    _os._exit(0)\n",
    )
    assert result.status == "success", result
    assert result.cpu_ms >= 300, f"the host reported cpu_ms={result.cpu_ms} for a run that burned ~400 ms of CPU"
    assert result.max_rss_bytes > 0, "the host reported max_rss_bytes=0"
    host_intact(sandbox, result)


def test_channel_closed_then_loop(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    chan = channel(ctx)
    chan.shutdown(_socket.SHUT_RDWR)
    chan.close()
    while True:
        pass
""",
        timeout_ms=1000,
    )
    assert result.error_type in {"TIMEOUT", "WORKER_CRASHED"}, result
    assert result.elapsed < 2.5, result.elapsed
    host_intact(sandbox, result)


def test_channel_kept_alive_by_fd_in_flight(sandbox, run):
    """The child parks its own channel descriptor in an unreachable socket's
    queue (a reference cycle) before exiting: the host must not hang on it."""
    result = run(
        """
def attack(params, ctx):
    chan = channel(ctx)
    left, right = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    _socket.send_fds(left, [b"x"], [chan.fileno(), right.fileno(), left.fileno()])
    _socket.send_fds(right, [b"y"], [chan.fileno(), left.fileno(), right.fileno()])
    left.close()
    right.close()
    return "parked"
""",
        timeout_ms=1000,
    )
    assert result.status == "success" and result.result == "parked", result
    assert result.elapsed < 2.0, result.elapsed
    host_intact(sandbox, result)


# -- isolation between runs -----------------------------------------------------------------

STASH = {
    "builtins": (
        "import builtins\n    builtins.HOSTILE_STASH = token",
        "import builtins\n    return getattr(builtins, 'HOSTILE_STASH', None)",
    ),
    "sys_modules": (
        "import sys, types\n    m = types.ModuleType('hostile_stash')\n    m.value = token\n    sys.modules['hostile_stash'] = m",
        "import sys\n    m = sys.modules.get('hostile_stash')\n    return getattr(m, 'value', None)",
    ),
    "preimported_module_global": (
        "import json, re\n    json.HOSTILE_STASH = token\n    re._HOSTILE_STASH = token\n    _os.HOSTILE_STASH = token",
        "import json, re\n    return getattr(json, 'HOSTILE_STASH', None) or getattr(re, '_HOSTILE_STASH', None) or getattr(_os, 'HOSTILE_STASH', None)",
    ),
    "os_environ": (
        "_os.environ['HOSTILE_STASH'] = token\n    _os.putenv('HOSTILE_STASH2', token)",
        "return _os.environ.get('HOSTILE_STASH') or _os.environ.get('HOSTILE_STASH2')",
    ),
    "files": (
        "for path in ('/tmp/hostile_stash', '/dev/shm/hostile_stash', '/hostile_stash', '/dev/hostile_stash', _os.path.dirname(_os.__file__) + '/hostile_stash'):\n"
        "        attempt(lambda p=path: open(p, 'w').write(token))",
        "found = []\n"
        "    for path in ('/tmp/hostile_stash', '/dev/shm/hostile_stash', '/hostile_stash', '/dev/hostile_stash', _os.path.dirname(_os.__file__) + '/hostile_stash'):\n"
        "        r = attempt(lambda p=path: open(p).read())\n"
        "        if not r['blocked']:\n"
        "            found.append(r['value'])\n"
        "    return found or None",
    ),
    "shared_memory_reachable_by_gc": (
        "import mmap\n"
        "    data = token.encode() * 8\n"
        "    for obj in _gc.get_objects():\n"
        "        if isinstance(obj, mmap.mmap):\n"
        "            try:\n"
        "                obj[len(obj) - len(data):] = data\n"
        "            except BaseException:\n"
        "                pass",
        "import mmap, re\n"
        "    found = []\n"
        "    for obj in _gc.get_objects():\n"
        "        if isinstance(obj, mmap.mmap):\n"
        "            try:\n"
        "                found += re.findall(rb'hostile-stash-[0-9a-f]{32}', obj[:])\n"
        "            except BaseException:\n"
        "                pass\n"
        "    return [f.decode() for f in found] or None",
    ),
}


@pytest.mark.parametrize("kind", sorted(STASH))
def test_state_does_not_carry_to_next_run(sandbox, run, kind):
    token = new_token("hostile-stash")
    stash, probe = STASH[kind]
    first = run(f"def attack(params, ctx):\n    token = params['token']\n    {stash}\n    return 'stashed'\n", params={"token": token})
    assert first.status == "success", first
    second = run(f"def attack(params, ctx):\n    {probe}\n")
    try:
        assert second.status == "success", second
        assert second.result is None, f"run 2 saw what run 1 left: {second.result}"
        assert token not in result_text(second)
        host_intact(sandbox, second)
    finally:
        for path in ("/tmp/hostile_stash", "/dev/shm/hostile_stash", "/hostile_stash", os.path.join(STDLIB, "hostile_stash")):
            assert not os.path.lexists(path), f"{path} was created on the host"


SECRET_SCANNER = r"""
import mmap, re, sys, time
PATTERN = "org-a-" + "secret-" + "[0-9a-f]{32}"
def attack(params, ctx):
    rx, brx = re.compile(PATTERN), re.compile(PATTERN.encode())
    found, tried = set(), {}
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for obj in _gc.get_objects():
            if isinstance(obj, str):
                found.update(rx.findall(obj))
            elif isinstance(obj, (bytes, bytearray)):
                found.update(m.decode() for m in brx.findall(obj))
            elif isinstance(obj, dict):
                for value in list(obj.values()):
                    if isinstance(value, str):
                        found.update(rx.findall(value))
            elif isinstance(obj, mmap.mmap):
                try:
                    found.update(m.decode() for m in brx.findall(obj[:]))
                except BaseException:
                    pass
        for value in _os.environ.values():
            found.update(rx.findall(value))
        for pid in range(1, 64):
            for leaf in ("environ", "cmdline", "mem"):
                path = f"/proc/{pid}/{leaf}"
                r = attempt(lambda: open(path, "rb").read(1 << 20))
                tried[path] = r["blocked"]
                if not r["blocked"]:
                    found.update(rx.findall(r["value"]))
        time.sleep(0.1)
    return {"found": sorted(found), "any_proc_readable": not all(tried.values())}
"""


def test_secrets_isolated_between_concurrent_runs(sandbox, run, run_b):
    secret = "org-a-secret-" + new_token("x")[-32:]
    holder = """
import time
def attack(params, ctx):
    value = ctx.secrets["TOKEN"]
    copies = [value * 3, value.encode(), bytearray(value.encode())]
    time.sleep(1.5)
    return {"held": len(copies)}
"""
    thread, box = in_background(lambda: run(holder, secrets={"TOKEN": secret}, timeout_ms=5000))
    time.sleep(0.2)
    scan = run_b(SECRET_SCANNER, timeout_ms=5000)
    thread.join(10)
    assert "error" not in box, box.get("error")
    assert box["result"].status == "success", box["result"]
    assert scan.status == "success", scan
    assert scan.result["found"] == [], scan.result
    assert scan.result["any_proc_readable"] is False
    assert secret not in result_text(scan)
    # And the next run on the same fork-server as the holder does not see it either.
    later = run(SECRET_SCANNER, timeout_ms=5000)
    assert later.status == "success" and later.result["found"] == [], later.result
    assert secret not in result_text(later)
    host_intact(sandbox, scan)


def test_abstract_unix_socket_between_concurrent_runs(sandbox, run, run_b):
    listener = """
import time
def attack(params, ctx):
    out = {"socket": attempt(lambda: _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM).bind(b"\\0hostile-test"))}
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    out["bind_socketpair"] = attempt(a.bind, b"\\0hostile-test")
    a.settimeout(1.2)
    out["received"] = attempt(a.recv, 100)
    return out
"""
    talker = """
def attack(params, ctx):
    out = {"socket": attempt(lambda: _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM).sendto(b"hi", b"\\0hostile-test"))}
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    out["sendto_socketpair"] = attempt(a.sendto, b"hi", b"\\0hostile-test")
    s, t = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    out["connect_socketpair"] = attempt(s.connect, b"\\0hostile-test")
    return out
"""
    thread, box = in_background(lambda: run(listener, timeout_ms=4000))
    time.sleep(0.4)
    talk = run_b(talker)
    thread.join(10)
    assert "error" not in box, box.get("error")
    listen = box["result"]
    assert listen.status == "success" and talk.status == "success", (listen, talk)
    assert listen.result["socket"]["blocked"] and talk.result["socket"]["blocked"], (listen.result, talk.result)
    assert talk.result["sendto_socketpair"]["blocked"], talk.result
    assert talk.result["connect_socketpair"]["blocked"], talk.result
    assert listen.result["received"]["blocked"], f"run B reached run A: {listen.result}"
    host_intact(sandbox, listen)


def test_separate_lock_dirs_do_not_share_a_slot(sandbox, run):
    """Two clients on one node with different lock dirs (e.g. the service and
    `manage.py sandbox_check`, which uses a temporary one) must still not share
    a uid or a cgroup: a thread bomb under one must not starve the other."""
    other_dir = tempfile.mkdtemp(prefix="hostile-locks-other-")
    other = ForkServerClient(lock_dir=other_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS))  # same configuration, another lock dir
    try:
        other.ensure_started()
        hog = """
import threading, time
def attack(params, ctx):
    gate = threading.Event()
    started = 0
    for _ in range(64):
        try:
            threading.Thread(target=gate.wait, daemon=True).start()
        except RuntimeError:
            break
        started += 1
    time.sleep(1.2)
    gate.set()
    return {"uid": _os.getuid(), "threads": started}
"""
        victim = """
import threading
def attack(params, ctx):
    started = 0
    for _ in range(3):
        try:
            thread = threading.Thread(target=lambda: None)
            thread.start()
            thread.join()
        except RuntimeError:
            break
        started += 1
    return {"uid": _os.getuid(), "threads": started}
"""
        thread, box = in_background(lambda: run(hog, timeout_ms=4000))
        time.sleep(0.4)
        result = _run_on(other, plugin(victim), timeout_ms=2000)
        thread.join(10)
        hog_result = box["result"]
        assert hog_result.status == "success" and result.status == "success", (hog_result, result)
        host_intact(sandbox, hog_result)
        assert not result.leftovers and result.server_alive
        problems = []
        if result.result["uid"] == hog_result.result["uid"]:
            problems.append(f"both runs ran as uid {result.result['uid']} (slot index reused across lock dirs)")
        if result.result["threads"] != 3:
            problems.append(f"the other client's thread bomb ({hog_result.result['threads']} threads) starved this run: it started {result.result['threads']} of 3 threads")
        assert not problems, "; ".join(problems)
    finally:
        other.close()
        shutil.rmtree(other_dir, ignore_errors=True)


# -- after everything ----------------------------------------------------------------------


def test_canary_never_leaked(sandbox):
    assert ALL_RESULTS, "no run was recorded"
    for result in ALL_RESULTS:
        assert CANARY not in result_text(result)


def test_normal_run_still_works_on_the_same_fork_server(sandbox, run, run_b):
    result = run(BENIGN, params={"final": True})
    assert result.status == "success" and result.result == {"ok": True, "echo": {"final": True}}, result
    other = run_b(BENIGN, params={"final": "b"})
    assert other.status == "success" and other.result == {"ok": True, "echo": {"final": "b"}}, other
    assert server_pids(sandbox.a) == sandbox.start_pids["a"], "fork-server A was replaced during the module"
    assert server_pids(sandbox.b) == sandbox.start_pids["b"], "fork-server B was replaced during the module"
    assert sandbox.a.missing_layers() == [] and sandbox.b.missing_layers() == []
