"""SIGKILL of any one process of the service, under a stream of runs."""

import pytest

from tests.factories import wait_for
from tests.faults.service import Service, Stream

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 5000
# Every accepted run ends within its timeout plus this (the reaper's sweep,
# a cluster's restart by supervisord, a retry's back-off).
RECOVERY_SECONDS = 15


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = Service(tmp_path_factory.mktemp("faults"), grace_seconds=10, workers=3).start()
    service.prepare()
    yield service
    service.stop(timeout=60)


def running_worker(service):
    pids = {pid for (pid,) in service.query(
        "SELECT CAST(substr(worker, instr(worker, ':') + 1) AS INTEGER) FROM executions_execution "
        "WHERE status = 'running' AND priority = 'medium'")}
    return next((w for w in service.workers("medium") if w.pid in pids), None)


def idle_worker(service):
    # Blocked in the kernel's receive on the cluster's wake-up socket: the
    # state in which django-q2's own worker held its queue's lock.
    busy = running_worker(service)
    return next((w for w in service.workers("medium") if w != busy and w.status() == "sleeping"), None)


def fork_server(service):
    worker = running_worker(service)
    return worker and service.fork_server(worker)


def sandbox_child(service):
    server = fork_server(service)
    children = server and server.children(recursive=True)
    return children[-1] if children else None


VICTIMS = {
    "idle worker": idle_worker,
    "running worker": running_worker,
    "sentinel": lambda service: service.sentinel("medium"),
    "cluster main process": lambda service: service.program("cluster-medium"),
    "fork-server": fork_server,
    "sandbox child": sandbox_child,
    "gunicorn worker": lambda service: service.program("web").children()[0],
    "gunicorn master": lambda service: service.program("web"),
}


@pytest.mark.parametrize("victim", list(VICTIMS))
def test_one_killed_process_loses_no_run_and_the_service_goes_on(service, victim):
    before = service.query("SELECT COUNT(*) FROM executions_execution")[0][0]
    with Stream(service, rate=10, params={"seconds": 0.3}, timeout=RUN_TIMEOUT_MS) as stream:
        target = wait_for(lambda: VICTIMS[victim](service), timeout=10, interval=0.05)
        target.kill()
        wait_for(lambda: len(stream.accepted) >= 20, timeout=30, interval=0.1)

    # Every run the service accepted (the client may not have heard of all of
    # them: a web process can die after committing one) ends, within bounds.
    assert wait_for(lambda: service.unfinished() == 0, timeout=RUN_TIMEOUT_MS / 1000 + RECOVERY_SECONDS), (
        service.statuses(), service.log_tail())
    runs = service.query("SELECT status, error_type FROM executions_execution LIMIT -1 OFFSET %s", before)
    assert len(runs) >= len(stream.accepted) >= 20
    # The killed run was given back and run again (the action is idempotent):
    # nothing failed.
    assert {status for status, _ in runs} == {"success"}, runs
    # Quotas add up: one unit of the day's quota per admitted run, no slot held.
    admitted = service.query("SELECT COUNT(*) FROM executions_execution")[0][0]
    assert service.query("SELECT SUM(count) FROM quotas_dailyusage")[0][0] == admitted

    # And it goes on serving: a synchronous run, and /health answering 200.
    status, body = wait_for(lambda: ok(service.execute("napper", "nap", {"seconds": 0})), timeout=RECOVERY_SECONDS)
    assert body["success"] is True
    status, health = wait_for(lambda: ok(service.get("/health")), timeout=RECOVERY_SECONDS)
    assert health["status"] in ("healthy", "degraded")


def ok(answer_or_error):
    try:
        status, body = answer_or_error
    except OSError:
        return None
    return (status, body) if status == 200 else None

