"""Wake-up sockets, in a process holding many descriptors (a busy web worker)."""

import os
import resource

import pytest

from executions.queue.wakeups import Waiter, wake


@pytest.fixture
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-files limit ({hard}) is too low to hold 1100 descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    yield
    for fd in held:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_waiter_above_descriptor_1024_is_woken_and_times_out(many_descriptors, settings, tmp_path):
    settings.WAKEUP_DIR = str(tmp_path)
    with Waiter("run-test") as waiter:
        assert waiter.sock.fileno() > 1024
        assert waiter.wait(0.01) is False
        wake("run-test")
        assert waiter.wait(1) is True
