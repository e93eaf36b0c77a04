"""Many synchronous callers of long runs, on the real service (`make run`):
they wait without holding the web's capacity, and trivial calls beside them
are served at once, by the worker long runs may never take."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.factories import wait_for
from tests.faults.service import Service

pytestmark = pytest.mark.slow

LONG_CALLERS = 60


def test_trivial_calls_and_health_stay_fast_while_many_sync_callers_wait_for_long_runs(tmp_path):
    # One web process, allowed to work on 4 requests at once: 60 waiting
    # callers would shut everything else out if waiting held a slot.
    service = Service(tmp_path, grace_seconds=5, workers=2, WEB_WORKERS=1, WEB_ACTIVE_REQUEST_LIMIT=4).start()
    try:
        service.prepare(concurrency=200)
        started = threading.Event()

        def long_call(_):
            started.set()
            while True:
                status, body = service.request("POST", "/execute", {
                    "pluginId": "napper", "actionName": "long_nap", "params": {"seconds": 3}, "timeout": 4000,
                }, timeout=60)
                # 60 callers at once may be shed: come back after Retry-After, as a client should.
                if status != 503 or body["error"]["type"] != "QUEUE_FULL":
                    return status, body
                time.sleep(1)

        with ThreadPoolExecutor(LONG_CALLERS) as pool:
            long_calls = [pool.submit(long_call, i) for i in range(LONG_CALLERS)]
            started.wait(5)
            assert wait_for(lambda: service.query(
                "SELECT COUNT(*) FROM executions_execution WHERE action = 'long_nap'")[0][0] == LONG_CALLERS, timeout=30)
            # Every long caller is now admitted and waiting; one long run holds
            # a worker, the rest queue behind it.
            trivial, health = [], []
            for _ in range(20):
                began = time.monotonic()
                status, body = service.execute("napper", "nap", {"seconds": 0})
                trivial.append((status, body.get("success") or body["error"]["type"], round(time.monotonic() - began, 3)))
                began = time.monotonic()
                status, _ = service.get("/health")
                health.append((status, round(time.monotonic() - began, 3)))
                time.sleep(0.05)
            answers = [future.result() for future in long_calls]

        assert [call for call in trivial if call[:2] != (200, True)] == [], trivial
        assert all(status in (200, 503) for status, _ in health), health  # 503: degraded, still answering
        # Served beside the long runs, not behind them (each long run is 3 s).
        assert max(seconds for _, _, seconds in trivial + [(0, 0, s) for _, s in health]) < 2.0, (trivial, health)
        # Each long caller got an answer: its run, or TIMEOUT once it could not
        # start in time — never a crash, never an unanswered wait.
        outcomes = sorted({(status, body["success"] or body["error"]["type"]) for status, body in answers})
        assert set(outcomes) <= {(200, True), (504, "TIMEOUT")}, outcomes
        assert (200, True) in outcomes
        assert wait_for(lambda: service.unfinished() == 0, timeout=30)
    finally:
        service.stop(timeout=60)
