"""Isolation between runs: nothing one run leaves (builtins, modules,
environment, files, shared memory) reaches the next; concurrent runs cannot
read each other's secrets or talk over abstract Unix sockets; clients with
different lock dirs do not share a uid or a cgroup.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from sandbox import ALL_LAYERS, ForkServerClient
from tests.sandbox.helpers import (
    STDLIB,
    UID_BASE,
    host_intact,
    in_background,
    new_token,
    plugin,
    result_text,
    run_on,
)

pytestmark = pytest.mark.slow

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
        result = run_on(other, plugin(victim), timeout_ms=2000)
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
