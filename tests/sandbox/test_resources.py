"""Hostile plugins that exhaust resources: fork and thread bombs, memory
bombs, time bombs (busy loops, C loops, backtracking, ignored signals,
sleeps), runaway recursion. Each is stopped by its limit and the host stays
untouched.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.sandbox.helpers import BENIGN, SPIN, PeakRss, host_intact, server_pids

pytestmark = pytest.mark.slow

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


def test_cpu_limit_reached_before_a_late_deadline_check_is_a_timeout(sandbox, run):
    """On a busy host the fork-server may look at the clock late; by then the
    kernel has killed the spinning child for its CPU allowance (the timeout's
    seconds + 1, SIGKILL because soft and hard limits are equal). That is the
    run's timeout, not a crash of the worker."""
    pids = server_pids(sandbox.a)
    server = list(pids["inner"]) or [pids["outer"]]

    def pause_the_fork_server():
        time.sleep(0.3)
        for pid in server:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(2.5)
        for pid in server:
            os.kill(pid, signal.SIGCONT)

    pauser = threading.Thread(target=pause_the_fork_server)
    pauser.start()
    try:
        result = run(SPIN, timeout_ms=1000)
    finally:
        pauser.join()
    assert result.status == "timeout" and result.error_type == "TIMEOUT", result
    host_intact(sandbox, result)


# -- the stack ------------------------------------------------------------------------------


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
