"""Two real nodes, each its own `make run` (gunicorn, three priority
clusters, VAR_DIR), sharing one PostgreSQL database and one Redis, as
several machines would: quotas, concurrency, breakers and the cache are
exact across them, a run finished on one wakes its caller on the other at
once, and the runs of a node killed mid-run are finished or closed by the
other. Runs in `make test-scale`, which starts the servers."""

import contextlib
import os
import secrets
import signal
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from django.conf import settings
from django.db import connection

from tests.factories import wait_for
from tests.faults.service import Service, retried_while_shed

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (settings.REDIS_URL and connection.vendor == "postgresql"),
        reason="needs PostgreSQL and Redis (make test-scale)",
    ),
]

FAILER = """
def fail(params, ctx):
    raise RuntimeError("this plugin always fails")
"""

ECHOER = """
def echo(params, ctx):
    return {"echo": params}
"""

# Polls this slow prove that a run crossing nodes was woken, not polled for:
# a worker looks at the queue, and a waiting caller at its run, every 10 s.
SLOW_POLLS = {"QUEUE_IDLE_POLL_SECONDS": 10, "EXECUTION_IDLE_POLL_SECONDS": 10}


# Connections each web process may hold: fewer than the callers one test
# keeps waiting at once.
WEB_POOL = 5


def database_url_named(name):
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return urllib.parse.urlunsplit(url._replace(path=f"/{name}"))


def redis_url_numbered(number):
    url = urllib.parse.urlsplit(settings.REDIS_URL)
    return urllib.parse.urlunsplit(url._replace(path=f"/{number}"))


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Nodes A and B on a database of their own, one SECRET_KEY."""
    import psycopg

    name = f"two_nodes_{os.getpid()}"
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    shared = dict(DATABASE_URL=database_url_named(name), REDIS_URL=redis_url_numbered(5),
                  SECRET_KEY=secrets.token_urlsafe(40), EXECUTION_LEASE_GRACE_SECONDS=3, QUEUE_LIMIT=1000,
                  POSTGRES_CONNECTION_POOL=WEB_POOL, **SLOW_POLLS)
    started = []
    try:
        a = Service(tmp_path_factory.mktemp("node-a"), grace_seconds=5, **shared).start()
        started.append(a)
        a.prepare(concurrency=200)
        a.install_plugin("failer", FAILER, {"fail": {"handler": "fail"}})
        a.install_plugin("echoer", ECHOER, {"echo": {"handler": "echo", "cacheable": True}})
        b = Service(tmp_path_factory.mktemp("node-b"), grace_seconds=5, **shared).start()
        started.append(b)
        yield a, b
    finally:
        for node in started:
            if node.processes():
                node.stop(timeout=60)
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def organization(node, slug, **limits):
    """A new organization with `limits` (model fields) and an API key of its own."""
    node.manage("create_org", slug, "--tier", "pro")
    assignments = ", ".join(f"{field}={value}" for field, value in limits.items())
    node.manage("shell", "-c", "from quotas.models import Organization; "
                f"Organization.objects.filter(slug='{slug}').update({assignments})")
    return node.manage("create_api_key", slug).strip().splitlines()[-1]


def race(calls):
    """Run every call at once, each on a thread of its own; their answers."""
    gate = threading.Barrier(len(calls))

    def call(function):
        gate.wait()
        return function()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, calls))


def test_150_racing_requests_over_both_nodes_against_a_daily_limit_of_100_admit_exactly_100(nodes):
    key = organization(nodes[0], "daily-race", daily_limit_override=100, concurrent_limit_override=200)
    answers = race([
        lambda node=nodes[i % 2]: retried_while_shed(
            lambda: node.execute("napper", "nap", {"seconds": 0}, key=key, **{"async": True}))
        for i in range(150)
    ])
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(202) == 100, statuses
    assert {body["error"]["type"] for status, body in answers if status != 202} == {"QUOTA_EXCEEDED"}
    assert nodes[0].query(
        "SELECT u.count FROM quotas_dailyusage u JOIN quotas_organization o ON o.id = u.organization_id "
        "WHERE o.slug = 'daily-race'") == [(100,)]


def test_10_racing_sync_runs_over_both_nodes_against_concurrency_3_run_3_at_a_time(nodes):
    key = organization(nodes[0], "three-at-once", concurrent_limit_override=3)
    answers = race([
        lambda node=nodes[i % 2]: retried_while_shed(
            lambda: node.execute("napper", "nap", {"seconds": 3}, key=key, timeout=10000))
        for i in range(10)
    ])
    ok = [body for status, body in answers if status == 200 and body["success"]]
    refused = [body["error"]["type"] for status, body in answers if status == 429]
    outcomes = [(status, body.get("error", {}).get("type")) for status, body in answers]
    assert len(ok) == 3 and refused == ["CONCURRENCY_LIMIT"] * 7, outcomes


def test_a_breaker_opened_by_failures_on_node_a_refuses_on_node_b(nodes):
    a, b = nodes
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        status, body = a.execute("failer", "fail", {})
        assert body["error"]["type"] == "PLUGIN_ERROR", body
    status, body = b.execute("failer", "fail", {})
    assert (status, body["error"]["type"]) == (503, "CIRCUIT_OPEN"), body


def test_a_cache_invalidation_on_node_a_misses_on_node_b(nodes):
    a, b = nodes
    params = {"word": secrets.token_hex(4)}
    assert a.execute("echoer", "echo", params)[1]["cacheHit"] is False
    assert b.execute("echoer", "echo", params)[1]["cacheHit"] is True  # one cache for both
    a.manage("invalidate_cache", "echoer")
    status, body = b.execute("echoer", "echo", params)
    assert (status, body["cacheHit"]) == (200, False), body


def runs_of(node, slug):
    """(status, error_type) of every run of organization `slug`."""
    return node.query(
        "SELECT e.status, e.error_type FROM executions_execution e JOIN quotas_organization o "
        "ON o.id = e.organization_id WHERE o.slug = %s", slug)


def database_connections(node):
    """TCP connections from the node's web processes to the database server."""
    port = urllib.parse.urlsplit(node.settings["DATABASE_URL"]).port
    web = node.program("web").children()
    return sum(1 for process in web for link in process.net_connections("tcp")
               if link.raddr and link.raddr.port == port)


def test_sync_callers_waiting_for_their_runs_hold_no_database_connection(nodes):
    """30 callers wait on node A for their runs (1 s each, 4 workers), while
    each of A's two web processes may hold 5 connections: each caller took
    one from its process's pool to be admitted and gave it back to wait
    (POSTGRES_CONNECTION_POOL), so all are served and A never holds more."""
    a, _ = nodes
    key = organization(a, "patient", concurrent_limit_override=50)
    with ThreadPoolExecutor(30) as pool:
        calls = []
        for _ in range(30):
            calls.append(pool.submit(a.execute, "napper", "nap", {"seconds": 1}, key=key, timeout=20000))
            time.sleep(0.05)
        assert wait_for(lambda: len(runs_of(a, "patient")) == 30, timeout=20)
        held = 0
        while not all(call.done() for call in calls):
            held = max(held, database_connections(a))
            time.sleep(0.2)
        answers = [call.result() for call in calls]
    assert all(status == 200 and body["success"] for status, body in answers), answers
    assert held <= 2 * WEB_POOL, held


@contextlib.contextmanager
def stopped(processes):
    """SIGSTOP `processes` for the duration of the block: they hold what
    they hold and take nothing new."""
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            try:
                process.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass


def clusters(node):
    """Every process of the node's three clusters."""
    processes = []
    for priority in ("high", "medium", "low"):
        main = node.program(f"cluster-{priority}")
        processes += [main, *main.children(recursive=True)]
    return processes


def test_a_sync_call_on_node_a_whose_run_executes_on_node_b_returns_when_it_ends_not_at_a_poll(nodes):
    """Node A's clusters are stopped, so B's worker takes the run. Workers
    and waiting callers poll every 10 s here: an answer within 3 s means B
    was woken when A queued the run, and A's caller when B ended it."""
    a, b = nodes
    b_pids = {process.pid for process in clusters(b)}
    with stopped(clusters(a)):
        began = time.monotonic()
        status, body = a.execute("napper", "nap", {"seconds": 0})
        took = time.monotonic() - began
    assert status == 200 and body["success"], body
    ((worker,),) = a.query("SELECT worker FROM executions_execution WHERE id = %s", body["executionId"])
    assert int(worker.rsplit(":", 1)[1]) in b_pids
    assert took < 3, took


def test_killing_node_b_mid_run_lets_node_a_finish_or_close_every_run(nodes):
    """Every process of B is SIGKILLed while its workers hold runs; A gives
    them back (run again: the nap is idempotent) and nothing stays open."""
    a, b = nodes
    key = organization(a, "orphans", concurrent_limit_override=20)
    before = a.query("SELECT COUNT(*) FROM executions_execution")[0][0]
    with stopped(clusters(a)):
        accepted = [b.execute("napper", "nap", {"seconds": 5}, key=key, **{"async": True}) for _ in range(6)]
        assert all(status == 202 for status, _ in accepted), accepted
        assert wait_for(lambda: [status for status, _ in runs_of(a, "orphans")].count("running") >= 2, timeout=30)
        b.kill_everything()
    assert wait_for(lambda: not any(status in ("queued", "running") for status, _ in runs_of(a, "orphans")),
                    timeout=90)
    outcomes = runs_of(a, "orphans")
    assert len(outcomes) == 6
    assert set(outcomes) <= {("success", ""), ("error", "WORKER_CRASHED")}, outcomes
    assert a.query("SELECT COUNT(*) FROM executions_execution")[0][0] == before + 6
