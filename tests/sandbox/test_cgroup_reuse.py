"""A slot's run cgroups outlive its fork-server: the next fork-server of the
slot reuses them, with the kernel's count of the OOM kills made in them
before. Only kills from its own start count: a run that kills itself with
SIGKILL in a cgroup where an earlier fork-server's run was OOM-killed is
WORKER_CRASHED, not MEMORY_LIMIT_EXCEEDED.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from sandbox import ALL_LAYERS, ForkServerClient
from tests.sandbox.helpers import UID_BASE, make_request

pytestmark = pytest.mark.slow

HOARDS = "def attack(params, ctx):\n    kept = []\n    while True:\n        kept.append(bytearray(1 << 20))\n"
KILLS_ITSELF = "import os, signal\n\ndef attack(params, ctx):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
# Every run cgroup of a slot is used within this many runs.
RUNS = 8


def test_oom_kills_of_an_earlier_fork_server_are_not_this_ones():
    lock_dir = tempfile.mkdtemp(prefix="cgroup-reuse-locks-")
    # A uid of its own: the suite's fork-servers hold the first slots of UID_BASE.
    uid_base = UID_BASE + 40
    try:
        first = ForkServerClient(lock_dir=lock_dir, slots=1, uid_base=uid_base, required_layers=list(ALL_LAYERS))
        try:
            for _ in range(RUNS):
                assert first.run(make_request(HOARDS, memory_mb=48)).error_type == "MEMORY_LIMIT_EXCEEDED"
        finally:
            first.close()
        second = ForkServerClient(lock_dir=lock_dir, slots=1, uid_base=uid_base, required_layers=list(ALL_LAYERS))
        try:
            for _ in range(RUNS):
                result = second.run(make_request(KILLS_ITSELF))
                assert result.error_type == "WORKER_CRASHED" and "SIGKILL" in result.message, result
        finally:
            second.close()
    finally:
        shutil.rmtree(lock_dir, ignore_errors=True)
