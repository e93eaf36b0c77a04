"""The elastic pool of a real cluster: it grows under a queue and shrinks back when idle."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import wait_for
from tests.faults.service import Service, retried_while_shed

pytestmark = pytest.mark.slow


def test_a_cluster_grows_to_its_maximum_under_load_and_back_to_its_minimum_when_idle(tmp_path):
    service = Service(tmp_path, grace_seconds=5, workers=3, WORKERS_MIN_MEDIUM=1, WORKER_IDLE_TIMEOUT=2).start()
    try:
        service.prepare()
        assert len(service.workers("medium")) == 1
        # At once, as a burst comes: sent one by one on a busy machine, the
        # first few runs queue before the rest and the pool grows by steps.
        # A web process short of CPU may shed a few: they come back.
        with ThreadPoolExecutor(max_workers=20) as senders:
            answers = list(senders.map(
                lambda _: retried_while_shed(lambda: service.execute(
                    "napper", "nap", {"seconds": 0.5}, timeout=30000, **{"async": True})),
                range(20),
            ))
        assert [status for status, _ in answers] == [202] * 20
        assert wait_for(lambda: len(service.workers("medium")) == 3, timeout=15, interval=0.1)
        assert wait_for(lambda: service.unfinished() == 0, timeout=30)
        assert wait_for(lambda: len(service.workers("medium")) == 1, timeout=15, interval=0.2)
        scalings = service.query(
            "SELECT json_extract(metadata, '$.from'), json_extract(metadata, '$.to') FROM executions_executionevent "
            "WHERE type = 'worker_pool_scaled' AND target_id = 'medium' ORDER BY id")
        assert scalings[0] == (1, 3) and scalings[-2:] == [(3, 2), (2, 1)], scalings
        # The pools' sizes are in the heartbeats /health and /stats read: one
        # worker each, at their minimum.
        assert wait_for(lambda: service.get("/health")[1]["checks"]["cluster"]["workers"] == 3, timeout=5)
    finally:
        service.stop(timeout=60)


def test_recycling_starts_the_replacement_before_letting_the_worker_go(tmp_path):
    service = Service(tmp_path, grace_seconds=5, workers=1, WORKER_RECYCLE=3).start()
    try:
        service.prepare()
        seen = set()
        # Runs until a replacement has taken over (with wake-ups, 8 runs of
        # 0.2 s can end before the first replacement is up), 40 at the most.
        for _ in range(40):
            seen.update(worker.pid for worker in service.workers("medium"))
            if len(seen) >= 2:
                break
            # Long enough for the sentinel (a 0.5 s guard cycle) to see a worker due.
            status, body = service.execute("napper", "nap", {"seconds": 0.2})
            assert status == 200 and body["success"] is True
            # Never a worker short: the old one is let go only once the new one runs.
            assert len(service.workers("medium")) >= 1
        assert len(seen) >= 2  # recycled at least once (a worker due keeps serving until replaced)
        assert not service.query("SELECT 1 FROM executions_executionevent WHERE type = 'process_restarted'")
    finally:
        service.stop(timeout=60)
