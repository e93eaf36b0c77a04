"""Hostile plugins that start processes or send signals: subprocess, exec,
spawn, fork through libc and raw clone; killing init, the parent or every pid
while another run is in flight; new sessions; SIGALRM; a segfault. Nothing
runs beside the plugin and nothing outside its own child is hurt.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import time

import pytest

from tests.sandbox.helpers import BENIGN, host_intact, in_background

pytestmark = pytest.mark.slow

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


# -- signals and sessions ------------------------------------------------------------------

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


# -- crashing ------------------------------------------------------------------------------


def test_segfault_through_ctypes(sandbox, run):
    result = run("def attack(params, ctx):\n    return _ctypes.string_at(0)\n")
    assert result.error_type == "WORKER_CRASHED", result
    assert "SIGSEGV" in result.message
    host_intact(sandbox, result)
