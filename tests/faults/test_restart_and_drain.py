"""The whole service killed at once and started again, and stopped with one
SIGTERM while runs are in flight: nothing accepted is lost."""

import contextlib

import pytest

from tests.factories import wait_for
from tests.faults.service import Service

pytestmark = pytest.mark.slow


def queue_runs(service, count, seconds, timeout_ms):
    ids = []
    for _ in range(count):
        status, body = service.execute("napper", "nap", {"seconds": seconds}, timeout=timeout_ms, **{"async": True})
        assert status == 202, body
        ids.append(body["executionId"])
    return ids


def terminal(service, ids):
    marks = ",".join("?" * len(ids))
    rows = service.query(f"SELECT status FROM executions_execution WHERE id IN ({marks})", *[i.replace("-", "") for i in ids])
    return len(rows) == len(ids) and all(status in ("success", "error", "timeout") for (status,) in rows)


@contextlib.contextmanager
def service_with_runs_in_flight(tmp_path, *, grace_seconds, count, seconds, timeout_ms):
    """A service with `count` runs queued, some of them running; stopped at the end."""
    service = Service(tmp_path, grace_seconds=grace_seconds, workers=2).start()
    try:
        service.prepare()
        ids = queue_runs(service, count, seconds=seconds, timeout_ms=timeout_ms)
        wait_for(lambda: service.statuses().get("running"), timeout=10, interval=0.05)
        yield service, ids
    finally:
        service.stop(timeout=60)


def test_kill_9_of_every_process_then_make_run_again_finishes_every_queued_run(tmp_path):
    # More than the workers can take at once: most wait in the queue, a few
    # are running when everything dies.
    with service_with_runs_in_flight(tmp_path, grace_seconds=10, count=40, seconds=0.2, timeout_ms=30000) as (service, ids):
        service.kill_everything()
        assert not terminal(service, ids)

        service.start()
        assert wait_for(lambda: terminal(service, ids), timeout=60), service.statuses()
        assert service.statuses() == {"success": len(ids)}, service.statuses()


def test_sigterm_drains_runs_in_flight_and_a_restart_finishes_the_rest_and_stops_with_status_0(tmp_path):
    with service_with_runs_in_flight(tmp_path, grace_seconds=5, count=20, seconds=1, timeout_ms=60000) as (service, ids):
        # One SIGTERM: every process is gone within the grace period (and
        # supervisord's own stop sequence), and no run is left "running".
        took = service.stop(timeout=service.grace_seconds + 30)
        assert took < service.grace_seconds + 20
        assert not service.leftovers()
        assert "running" not in service.statuses(), service.statuses()

        service.start()
        assert wait_for(lambda: terminal(service, ids), timeout=60), service.statuses()
        assert set(service.statuses()) == {"success"}, service.statuses()

        # Stopped by `make stop`, `make run` ends with 0 (a signal to make itself
        # ends make by that signal, GNU make's way: docs/operations.md).
        assert service.make_stop(timeout=service.grace_seconds + 30) == 0
        assert wait_for(lambda: not service.leftovers(), timeout=5)
