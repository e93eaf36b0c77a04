"""POST /execute and GET /executions/<id> through the real cluster and sandbox."""

import logging
import time

import pytest

from audit.models import AuditEvent
from executions.models import Execution
from tests.factories import install_source

pytestmark = pytest.mark.slow

LOOPS_FOREVER = """
def spin(params, ctx):
    while True:
        pass
"""

KILLS_ITSELF = """
import os, signal

def die(params, ctx):
    os.kill(os.getpid(), signal.SIGKILL)
"""

RAISES = """
def fail(params, ctx):
    ctx.log("about to fail")
    raise ValueError("bad input: " + params.get("why", "?"))
"""


def execute(api, **body):
    return api.post("/execute", body, format="json")


def test_sync_success_returns_result_quota_and_records_event(live, api, examples):
    response = execute(api, pluginId="text-tools", actionName="slugify", params={"text": "Hello, Wörld!"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["status"] == "success"
    assert body["result"]["slug"] == "hello-world"
    assert body["cacheHit"] is False and body["retryCount"] == 0
    assert body["executionTime"] >= 0 and body["memoryUsed"] > 0
    assert body["quota"] == {"used": 1, "remaining": 9999, "limit": 10000}
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.status == "success" and execution.finished_at is not None
    event = AuditEvent.objects.get(type="plugin_action_executed", metadata__executionId=body["executionId"])
    assert event.metadata["status"] == "success" and event.target_id == "text-tools"


def test_async_returns_202_and_location_then_result(live, api, examples):
    response = execute(api, pluginId="stats", actionName="describe", params={"values": [1, 2, 3, 4]}, **{"async": True})
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    location = response["Location"]
    assert location == f"http://testserver/executions/{response.json()['executionId']}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        polled = api.get(location)
        if polled.json()["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert polled.status_code == 200
    assert polled.json()["result"]["mean"] == 2.5


def test_infinite_loop_times_out_and_next_call_succeeds(live, api, examples):
    install_source("spinner", LOOPS_FOREVER, {"spin": "spin"})
    started = time.monotonic()
    response = execute(api, pluginId="spinner", actionName="spin", timeout=2000)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.json()
    error = response.json()["error"]
    assert error["type"] == "TIMEOUT" and error["retryable"] is True
    assert elapsed < 3.0
    assert Execution.objects.get(pk=response.json()["executionId"]).status == "timeout"
    follow_up = execute(api, pluginId="text-tools", actionName="slugify", params={"text": "still alive"})
    assert follow_up.status_code == 200 and follow_up.json()["result"]["slug"] == "still-alive"


def test_plugin_killing_itself_is_worker_crashed_and_cluster_keeps_serving(live, api, examples):
    install_source("suicidal", KILLS_ITSELF, {"die": "die"})
    response = execute(api, pluginId="suicidal", actionName="die")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["type"] == "WORKER_CRASHED" and body["error"]["retryable"] is True
    assert "SIGKILL" in body["error"]["message"]
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.status == "error" and execution.error_type == "WORKER_CRASHED"
    assert AuditEvent.objects.filter(metadata__executionId=body["executionId"]).exists()
    for _ in range(3):
        again = execute(api, pluginId="stats", actionName="describe", params={"values": [5]})
        assert again.status_code == 200


def test_plugin_exception_is_plugin_error_with_traceback_and_logs(live, api, examples, caplog):
    install_source("failing", RAISES, {"fail": "fail"})
    with caplog.at_level(logging.INFO, logger="django.request"):
        response = execute(api, pluginId="failing", actionName="fail", params={"why": "nope"})
    assert response.status_code == 500
    # A designed answer, logged once as what it is, not as an Internal Server Error.
    [logged] = [record for record in caplog.records if record.name in ("django.request", "core.envelope")]
    assert (logged.name, logged.levelname, logged.exc_info) == ("core.envelope", "WARNING", None)
    assert logged.getMessage().startswith(f"answered 500 PLUGIN_ERROR (execution {response.json()['executionId']})")
    body = response.json()
    assert body["error"]["type"] == "PLUGIN_ERROR" and body["error"]["retryable"] is False
    assert "ValueError: bad input: nope" in body["error"]["message"]
    assert "plugin.py" in body["error"]["details"]["traceback"]
    assert body["logs"] == ["about to fail"]


def test_get_of_a_failed_run_is_200_with_its_status_and_error(live, api, examples):
    # The lookup succeeded: the run's failure is in the body, not in the HTTP status.
    install_source("failing", RAISES, {"fail": "fail"})
    failed = execute(api, pluginId="failing", actionName="fail", params={"why": "nope"}).json()
    install_source("spinner", LOOPS_FOREVER, {"spin": "spin"})
    timed_out = execute(api, pluginId="spinner", actionName="spin", timeout=1000).json()
    for run, status, error_type in ((failed, "error", "PLUGIN_ERROR"), (timed_out, "timeout", "TIMEOUT")):
        polled = api.get(f"/executions/{run['executionId']}")
        assert polled.status_code == 200, polled.json()
        body = polled.json()
        assert (body["success"], body["status"], body["executionId"]) == (False, status, run["executionId"])
        assert body["error"] == run["error"] and body["error"]["type"] == error_type


def test_get_execution_of_another_organization_is_not_found(live, api, examples, make_org, make_client):
    response = execute(api, pluginId="stats", actionName="describe", params={"values": [1]})
    other = make_client(make_org("other"))
    assert other.get(f"/executions/{response.json()['executionId']}").status_code == 404
