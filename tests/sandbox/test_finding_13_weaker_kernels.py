"""Finding 13: a weaker kernel must not pass for a fully confined one.

Below Landlock ABI 6 the ruleset has no signal or abstract-socket scoping,
so a run's child can signal another child of its slot's uid -- such as a
spare waiting for the next run. That scoping is its own layer,
`landlock_scoping`, required by default like every other. The "ABI too old"
path is forced through the ABI probe (`confine.landlock_abi`) only; the
fork-server and everything else around it are the real ones.

And a spare stopped with SIGSTOP (by a run, where signals are not scoped, or
by anyone) is never handed a run: handed one it would sit on it until the
deadline.
"""

import os
import signal
import time

import psutil
import pytest

import sandbox.client
from sandbox import ALL_LAYERS, ForkServerClient, SandboxUnavailable, describe_host
from sandbox.child import confine
from tests.sandbox.helpers import BENIGN, UID_BASE, host_intact, process_snapshot

# Linux 6.12's Landlock ABI 6 brought signal and abstract-socket scoping.
SCOPING_ABI = 6
OLD_ABI = SCOPING_ABI - 1


def test_scoping_is_a_layer_of_its_own_reported_as_this_kernel_offers_it(sandbox):
    scoped = confine.landlock_abi() >= SCOPING_ABI
    assert "landlock_scoping" in ALL_LAYERS
    assert sandbox.a.layers["landlock_scoping"]["active"] is scoped
    assert describe_host()["layers"]["landlock_scoping"][0] is scoped


def test_host_report_without_scoping_on_an_older_abi(monkeypatch):
    monkeypatch.setattr(confine, "landlock_abi", lambda: OLD_ABI)
    layers = describe_host()["layers"]
    assert layers["landlock"][0] is True
    active, reason = layers["landlock_scoping"]
    assert active is False and f"ABI {OLD_ABI}" in reason


def test_fork_server_on_an_older_abi_fails_closed(monkeypatch, tmp_path):
    capped = sandbox.client.FORKSERVER_BOOTSTRAP.replace(
        "from child.forkserver import main",
        f"from child import confine; confine.landlock_abi = lambda: {OLD_ABI}; from child.forkserver import main",
    )
    assert capped != sandbox.client.FORKSERVER_BOOTSTRAP
    monkeypatch.setattr(sandbox.client, "FORKSERVER_BOOTSTRAP", capped)
    client = ForkServerClient(lock_dir=str(tmp_path), uid_base=UID_BASE, required_layers=list(ALL_LAYERS))
    try:
        with pytest.raises(SandboxUnavailable, match="landlock_scoping"):
            client.ensure_started()
        assert client.layers["landlock"]["active"] is True
        assert client.layers["landlock_scoping"]["active"] is False
        assert client.missing_layers() == ["landlock_scoping"]
    finally:
        client.close()


STOP_EVERY_OTHER_CHILD = """
import signal
def attack(params, ctx):
    tried = {}
    for pid in range(2, 200):
        if pid != _os.getpid():
            report = attempt(_os.kill, pid, signal.SIGSTOP)
            if "ProcessLookupError" not in report.get("error", ""):
                tried[pid] = report
    return tried
"""


def _wait_stopped(pids, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in pids):
            return
        time.sleep(0.02)
    raise AssertionError(f"spares {pids} did not stop")


def test_stopped_spares_are_never_handed_a_run(sandbox, run, run_js):
    attack = run(STOP_EVERY_OTHER_CHILD)
    assert attack.status == "success", attack
    assert attack.result, "the run saw no other child to signal"
    if sandbox.a.layers.get("landlock_scoping", {}).get("active"):
        assert all(report["blocked"] for report in attack.result.values()), attack.result
    # Scoping keeps a run from stopping a spare; stop them from the host, as a
    # run on an unscoped kernel would.
    spares = process_snapshot(sandbox.a)
    assert spares
    for pid in spares:
        os.kill(pid, signal.SIGSTOP)
    _wait_stopped(spares)
    for attempt in range(2):
        result = run(BENIGN, params={"n": attempt}, timeout_ms=3000)
        assert result.status == "success" and result.result == {"ok": True, "echo": {"n": attempt}}, result
        assert result.elapsed < 2.0, result.elapsed
        host_intact(sandbox, result)
    # A Node spare, kept once the slot has run JavaScript, is stopped too: the next JavaScript run must not get it.
    result = run_js("exports.attack = (params) => ({ ok: true });\n", timeout_ms=5000)
    assert result.status == "success" and result.result == {"ok": True}, result
    assert not spares & process_snapshot(sandbox.a), "a stopped spare is still there"
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in spares)
