"""With REDIS_URL, a wake-up on one node reaches the waiters of another at
once (executions.queue.wakeups): a node here is a folder of wake-up sockets,
the other node a process with a folder of its own. Runs in `make test-scale`,
where the suite has a Redis."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from executions.queue.wakeups import Waiter
from tests.factories import ROOT

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a Redis (make test-scale)")

WAKE = "import django, sys; django.setup(); from executions.queue.wakeups import wake; wake(sys.argv[1])"


def wake_on_another_node(topic, wakeup_dir, *, redis_url):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "executor_project.settings", "WAKEUP_DIR": str(wakeup_dir),
           "REDIS_URL": redis_url}
    subprocess.run([sys.executable, "-c", WAKE, topic], cwd=ROOT, env=env, check=True, timeout=60)


def test_a_wake_up_on_another_node_reaches_the_waiter_here(settings, tmp_path):
    settings.WAKEUP_DIR = str(tmp_path / "this-node")
    with Waiter("run-across-nodes") as waiter:
        wake_on_another_node("run-across-nodes", tmp_path / "other-node", redis_url=settings.REDIS_URL)
        assert waiter.wait(10)


def test_without_redis_the_other_nodes_wake_up_stays_there(settings, tmp_path):
    settings.WAKEUP_DIR = str(tmp_path / "this-node")
    with Waiter("run-stays-there") as waiter:
        wake_on_another_node("run-stays-there", tmp_path / "other-node", redis_url="")
        assert not waiter.wait(1)


def test_a_wake_up_on_this_node_is_sent_once_not_again_through_redis(settings, tmp_path):
    from executions.queue.wakeups import wake

    settings.WAKEUP_DIR = str(tmp_path / "this-node")
    with Waiter("run-here") as waiter:
        wake("run-here")
        assert waiter.wait(5)
        assert not waiter.wait(1)
