"""The fork-servers every hostile-plugin test attacks, and the fixtures that
run a plugin on them (pure pytest, no Django: see tests/sandbox/__init__.py).

`sandbox` is package-scoped: one pair of fork-servers (A and B) serves every
module of tests/sandbox, so that host_intact() can check after each attack
that they are the very processes started at the beginning, and
test_zz_after_every_attack.py (run last) that they still work.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from types import SimpleNamespace

import pytest

from sandbox import ALL_LAYERS, ForkServerClient
from tests.sandbox.helpers import (
    CANARY,
    TOKEN,
    UID_BASE,
    Listeners,
    plugin,
    run_on,
    server_pids,
)


@pytest.fixture(scope="package")
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


@pytest.fixture
def run(sandbox):
    """run(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack")
    on client A; the source gets the attack prelude."""

    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return run_on(sandbox.a, plugin(source), params, timeout_ms, memory_mb, secrets, handler, **kwargs)

    return go


@pytest.fixture
def run_b(sandbox):
    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return run_on(sandbox.b, plugin(source), params, timeout_ms, memory_mb, secrets, handler, **kwargs)

    return go


@pytest.fixture
def fresh_client(sandbox):
    """A client of its own (next free slot of the same lock dir), for attacks
    that may leave a client unusable."""
    client = ForkServerClient(lock_dir=sandbox.lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS))
    client.ensure_started()
    yield client
    client.close()


@pytest.fixture
def run_js(sandbox):
    """run_js(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack"):
    a JavaScript plugin (`plugin.js`, no prelude) on client A."""

    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return run_on(sandbox.a, source, params, timeout_ms, memory_mb, secrets, handler, runtime="node", **kwargs)

    return go


@pytest.fixture
def run_js_b(sandbox):
    def go(source, params=None, timeout_ms=3000, memory_mb=128, secrets=None, handler="attack", **kwargs):
        return run_on(sandbox.b, source, params, timeout_ms, memory_mb, secrets, handler, runtime="node", **kwargs)

    return go
