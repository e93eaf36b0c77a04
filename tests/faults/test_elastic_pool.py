"""The elastic pool of a real cluster: it grows under a queue and shrinks back when idle."""

import pytest

from tests.factories import wait_for
from tests.faults.service import Service

pytestmark = pytest.mark.slow


def test_a_cluster_grows_to_its_maximum_under_load_and_back_to_its_minimum_when_idle(tmp_path):
    service = Service(tmp_path, grace_seconds=5, workers=3, WORKERS_MIN_MEDIUM=1, WORKER_IDLE_TIMEOUT=2).start()
    try:
        service.prepare()
        assert len(service.workers("medium")) == 1
        for _ in range(20):
            status, _ = service.execute("napper", "nap", {"seconds": 0.5}, timeout=30000, **{"async": True})
            assert status == 202
        assert wait_for(lambda: len(service.workers("medium")) == 3, timeout=15, interval=0.1)
        assert wait_for(lambda: service.unfinished() == 0, timeout=30)
        assert wait_for(lambda: len(service.workers("medium")) == 1, timeout=15, interval=0.2)
        scalings = service.query(
            "SELECT json_extract(metadata, '$.from'), json_extract(metadata, '$.to') FROM executions_executionevent "
            "WHERE type = 'worker_pool_scaled' AND target_id = 'medium' ORDER BY id")
        assert scalings[:2] == [(1, 2), (2, 3)] and scalings[-2:] == [(3, 2), (2, 1)], scalings
        # The pools' sizes are in the heartbeats /health and /stats read: one
        # worker each, at their minimum.
        assert wait_for(lambda: service.get("/health")[1]["checks"]["cluster"]["workers"] == 3, timeout=5)
    finally:
        service.stop(timeout=60)
