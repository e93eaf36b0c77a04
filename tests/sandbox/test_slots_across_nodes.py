"""Nodes that share a kernel (several `make run` on one machine, each with a
VAR_DIR of its own) never give one sandbox uid, or its cgroups, to two
fork-servers at once: as root the slot locks are host-wide, whatever lock
directory each node names."""

import os

import pytest

from sandbox.client import SlotLock

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="uids are switched to only as root")


def test_two_nodes_with_their_own_lock_directories_take_different_uids(tmp_path):
    uid_base = 260000  # a range no service of the suite uses
    node_a = SlotLock(str(tmp_path / "node-a"), slots=4, uid_base=uid_base)
    node_b = SlotLock(str(tmp_path / "node-b"), slots=4, uid_base=uid_base)
    try:
        assert node_a.uid != node_b.uid
    finally:
        node_a.release()
        node_b.release()
    again = SlotLock(str(tmp_path / "node-b"), slots=4, uid_base=uid_base)
    try:
        assert again.uid == uid_base  # released slots are free again
    finally:
        again.release()
