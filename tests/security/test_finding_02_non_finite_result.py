"""Finding 2: a plugin's result with numbers JSON cannot carry (NaN,
Infinity, or a literal too large for a float) must end its run as a
PLUGIN_ERROR at once, counted by the breaker as the failure it is; and any
failure while recording a run's outcome must still end the run, never
leaving it `running` with its sealed secrets. When even ending it fails, the
worker dies and the run, given back by its sentinel, is run again cleanly.

The plugin forges its result's text the way a hostile author would: it
replaces the child's JSON encoder, so the host receives whatever text the
plugin chose.
"""

import contextlib
import time

import pytest
from django.db import connection

from executions.models import CircuitBreaker, Execution, ExecutionAttempt
from tests.factories import install_source

pytestmark = pytest.mark.slow

FORGES_ITS_RESULT = """
import json

_dumps = json.dumps


class Forged:
    def __init__(self, text):
        self.text = text


def forging_dumps(value, *args, **kwargs):
    if isinstance(value, Forged):
        return value.text
    return _dumps(value, *args, **kwargs)


json.dumps = forging_dumps


def forge(params, ctx):
    if params.get("fail"):
        raise RuntimeError("failing on purpose")
    return Forged(params["text"])
"""

RETURNS_A_BLOB = """
def blob(params, ctx):
    return {"blob": "x" * params["size"]}
"""

SECRETS = {"TOKEN": "tok-finding-02-sealed"}


def execute(api, plugin, action, params, **extra):
    return api.post("/execute", {"pluginId": plugin, "actionName": action, "params": params, **extra}, format="json")


def assert_nothing_left_running():
    assert not Execution.objects.filter(status__in=["queued", "running"]).exists()


@pytest.mark.parametrize(
    "text", ['{"ratio":NaN}', '{"peak":Infinity}', '[1,{"low":-Infinity}]', '{"huge":1e999}'],
    ids=["nan", "infinity", "nested-minus-infinity", "overflowing-literal"],
)
def test_non_finite_numbers_end_the_run_as_plugin_error_at_once(live, api, text):
    install_source("forger", FORGES_ITS_RESULT, {"forge": "forge"}, secrets=["TOKEN"])
    # Two honest failures first: a success counted for the forged run would reset them.
    for _ in range(2):
        assert execute(api, "forger", "forge", {"fail": True}).json()["error"]["type"] == "PLUGIN_ERROR"

    started = time.monotonic()
    response = execute(api, "forger", "forge", {"text": text}, secrets=SECRETS, timeout=20000)
    elapsed = time.monotonic() - started

    assert response.status_code == 500, response.json()
    body = response.json()
    assert body["success"] is False
    assert body["error"]["type"] == "PLUGIN_ERROR" and body["error"]["retryable"] is False
    assert "NaN or Infinity" in body["error"]["message"]
    assert elapsed < 10, f"the caller waited {elapsed:.1f} s"
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.status == "error" and execution.error_type == "PLUGIN_ERROR"
    assert execution.result is None and execution.sealed_secrets == "" and execution.retry_count == 0
    assert list(ExecutionAttempt.objects.filter(execution=execution).values_list("error_type", flat=True)) == ["PLUGIN_ERROR"]
    assert CircuitBreaker.objects.get(plugin__slug="forger", organization=None).consecutive_failures == 3
    assert_nothing_left_running()


@contextlib.contextmanager
def refusing_trigger(name, event, condition, message, sqlstate):
    """A trigger that makes the database refuse the writes to
    executions_execution that `event` and `condition` describe, for as long
    as the block runs. PostgreSQL raises the error `sqlstate` names; SQLite
    can only refuse as a constraint would."""
    if connection.vendor == "postgresql":
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; END $$",
            f"CREATE TRIGGER {name} {event} ON executions_execution FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON executions_execution", f"DROP FUNCTION {name}()"]
    else:
        create = [
            f"CREATE TRIGGER {name} {event} ON executions_execution WHEN {condition} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    with connection.cursor() as cursor:
        for statement in create:
            cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for statement in drop:
                cursor.execute(statement)


@pytest.fixture
def database_refusing_large_results(live):
    """The database refuses results over 4 KiB, as a server with a smaller
    row or packet limit than ours would: the run itself succeeds, recording
    it fails."""
    with refusing_trigger(
        "refuse_large_results",
        "BEFORE UPDATE OF result",
        "length(CAST(NEW.result AS TEXT)) > 4096",
        "result too large for this database",
        "22001",  # value too long
    ):
        yield


def test_a_result_the_database_refuses_still_ends_the_run(live, api, database_refusing_large_results):
    install_source("blobs", RETURNS_A_BLOB, {"blob": "blob"}, secrets=["TOKEN"])
    started = time.monotonic()
    response = execute(api, "blobs", "blob", {"size": 8000}, secrets=SECRETS, timeout=20000)
    elapsed = time.monotonic() - started

    assert response.status_code == 500, response.json()
    error = response.json()["error"]
    assert error["type"] == "PLUGIN_ERROR" and error["retryable"] is False
    assert "could not be stored" in error["message"]
    assert elapsed < 10, f"the caller waited {elapsed:.1f} s"
    execution = Execution.objects.get(pk=response.json()["executionId"])
    assert execution.status == "error" and execution.result is None and execution.sealed_secrets == ""
    assert execution.retry_count == 0 and execution.finished_at is not None
    assert_nothing_left_running()
    # The worker that hit the refusal is still serving.
    assert execute(api, "blobs", "blob", {"size": 10}).json()["result"] == {"blob": "x" * 10}


@pytest.fixture
def database_refusing_first_ends(live):
    """The database refuses to end any run on its first attempt, as during a
    failover: the worker can record neither the outcome nor an error."""
    with refusing_trigger(
        "refuse_first_ends",
        "BEFORE UPDATE OF status",
        "NEW.status IN ('success', 'error') AND NEW.retry_count = 0",
        "the database is failing over",
        "57P01",  # the server is shutting down
    ):
        yield


def test_a_run_whose_end_cannot_be_recorded_at_all_is_run_again(live, api, database_refusing_first_ends):
    install_source("blobs", RETURNS_A_BLOB, {"blob": "blob"}, secrets=["TOKEN"])
    started = time.monotonic()
    response = execute(api, "blobs", "blob", {"size": 3}, secrets=SECRETS, timeout=20000)
    elapsed = time.monotonic() - started

    # The worker died; its sentinel gave the run back, and another attempt recorded it.
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"blob": "xxx"} and response.json()["retryCount"] == 1
    assert elapsed < 10, f"the caller waited {elapsed:.1f} s"
    execution = Execution.objects.get(pk=response.json()["executionId"])
    assert execution.sealed_secrets == ""
    attempts = ExecutionAttempt.objects.filter(execution=execution).order_by("number")
    assert list(attempts.values_list("number", "status")) == [(1, "success"), (2, "success")]
    assert_nothing_left_running()
