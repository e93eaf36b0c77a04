"""A JavaScript plugin through the real API: uploaded with POST /plugins,
run with POST /execute (sync and async) on the real cluster and sandbox,
and its timeout, memory limit and crash answered exactly as a Python
plugin's (504 TIMEOUT, MEMORY_LIMIT_EXCEEDED, WORKER_CRASHED); the rest of
the engine around a run (result cache, retries, audit events, metrics)
works for it as for a Python plugin."""

import json
import time

import pytest

from audit.models import AuditEvent
from executions.models import Execution, ExecutionAttempt
from tests.factories import wait_for
from tests.observability.test_metrics import TOKEN as METRICS_TOKEN
from tests.observability.test_metrics import scrape, value
from tests.plugins.helpers import upload, zip_of

pytestmark = pytest.mark.slow

SOURCE = """
const { slug } = require('./lib/text');

exports.slugify = async (params, ctx) => {
  ctx.log('slugifying', params.text);
  await new Promise((resolve) => setTimeout(resolve, 5));
  return { slug: slug(params.text), attempt: ctx.attempt };
};
exports.spin = () => { for (;;) {} };
exports.hoard = () => { const kept = []; for (;;) kept.push(Buffer.alloc(1 << 20, 1)); };
exports.crash = () => process.abort();
exports.fetch = async (params, ctx) => (await ctx.http.fetch(params.url)).status;
exports.fetchHandled = async (params, ctx) => {
  try { await ctx.http.get(params.url); } catch (error) { return { refused: error.name, message: error.message }; }
  return { refused: null };
};
exports.digest = (params) => ({ hex: require('crypto').createHash('sha256').update(params.text).digest('hex') });
exports.fail = () => { throw new TypeError('asked to fail'); };
// Dies (WORKER_CRASHED, a transient failure) until the given attempt.
exports.crashUntil = (params, ctx) => (ctx.attempt < params.succeedOn ? process.abort() : { attempt: ctx.attempt });
exports.leak = (params, ctx) => {
  console.log('the token is', ctx.secrets.API_TOKEN);
  return { token: ctx.secrets.API_TOKEN, granted: Object.keys(ctx.secrets) };
};
"""

TEXT = """
exports.slug = (text) => text.normalize('NFKD').replace(/[\\u0300-\\u036f]/g, '').toLowerCase()
  .replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
"""

MANIFEST = {
    "name": "js-tools",
    "version": "1.0.0",
    "runtime": "node",
    "entrypoint": "index.js",
    "limits": {"memoryMb": 96},
    "secrets": ["API_TOKEN"],
    "network": {"allowedDomains": ["metadata.example"]},
    "actions": {
        **{name: {"handler": name} for name in ("slugify", "spin", "hoard", "crash", "leak", "fetch", "fetchHandled", "fail",
                                                "crashUntil")},
        "digest": {"handler": "digest", "cacheable": True},
    },
}


def execute(api, action, **body):
    return api.post("/execute", {"pluginId": "js-tools", "actionName": action, **body}, format="json")


@pytest.fixture
def js_tools(live, api):
    response = upload(api, zip_of(("plugin.json", json.dumps(MANIFEST)), ("index.js", SOURCE), ("lib/text.js", TEXT)))
    assert response.status_code == 201, response.content
    return response.json()


def test_a_javascript_plugin_runs_sync_and_async(js_tools, api):
    response = execute(api, "slugify", params={"text": "Hello, Wörld!"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True and body["result"] == {"slug": "hello-world", "attempt": 1}
    assert body["memoryUsed"] > 0
    queued = execute(api, "slugify", params={"text": "Ça va"}, **{"async": True})
    assert queued.status_code == 202, queued.json()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        polled = api.get(queued["Location"])
        if polled.json()["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert polled.status_code == 200 and polled.json()["result"] == {"slug": "ca-va", "attempt": 1}, polled.json()


def test_a_javascript_plugin_times_out_runs_out_of_memory_and_crashes_as_python_does(js_tools, api):
    started = time.monotonic()
    timed_out = execute(api, "spin", timeout=1500)
    assert timed_out.status_code == 504, timed_out.json()
    assert timed_out.json()["error"]["type"] == "TIMEOUT" and timed_out.json()["error"]["retryable"] is True
    assert time.monotonic() - started < 5
    assert Execution.objects.get(pk=timed_out.json()["executionId"]).status == "timeout"

    hoarded = execute(api, "hoard")
    assert hoarded.status_code == 500, hoarded.json()
    assert hoarded.json()["error"]["type"] == "MEMORY_LIMIT_EXCEEDED" and hoarded.json()["error"]["retryable"] is False

    crashed = execute(api, "crash")
    assert crashed.status_code == 500, crashed.json()
    assert crashed.json()["error"]["type"] == "WORKER_CRASHED" and "SIGABRT" in crashed.json()["error"]["message"]

    # Three failures in a row open the plugin's circuit breaker, as for a
    # Python plugin.
    again = execute(api, "slugify", params={"text": "still here"})
    assert again.status_code == 503 and again.json()["error"]["type"] == "CIRCUIT_OPEN", again.json()


def test_a_javascript_plugin_gets_its_secrets_and_they_are_redacted(js_tools, api):
    token = "tok-" + "7" * 24
    response = execute(api, "leak", secrets={"API_TOKEN": token, "OTHER": "not-declared-" + "9" * 16})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"token": "[REDACTED]", "granted": ["API_TOKEN"]}
    execution = Execution.objects.get(pk=response.json()["executionId"])
    assert token not in json.dumps(execution.logs) and "[REDACTED]" in json.dumps(execution.logs)


def test_a_javascript_plugin_s_egress_goes_through_the_gateway(js_tools, api):
    handled = execute(api, "fetchHandled", params={"url": "http://not-allowed.example/"})
    assert handled.status_code == 200, handled.json()
    assert handled.json()["result"]["refused"] == "EgressDenied" and "allowlist" in handled.json()["result"]["message"]
    metadata = execute(api, "fetch", params={"url": "http://169.254.169.254/latest/meta-data/"})
    assert metadata.status_code == 500, metadata.json()
    assert metadata.json()["error"]["type"] == "SANDBOX_VIOLATION"
    assert AuditEvent.objects.filter(type="egress_request", metadata__allowed=False).count() == 2


def test_a_cacheable_javascript_action_is_answered_from_the_cache(js_tools, api):
    first = execute(api, "digest", params={"text": "abc"})
    assert first.status_code == 200 and first.json()["cacheHit"] is False, first.json()
    second = execute(api, "digest", params={"text": "abc"})
    assert second.status_code == 200 and second.json()["cacheHit"] is True, second.json()
    assert second.json()["result"] == first.json()["result"]
    assert not ExecutionAttempt.objects.filter(execution_id=second.json()["executionId"]).exists()


def test_a_crashed_javascript_run_is_retried_and_succeeds(js_tools, api):
    response = execute(api, "crashUntil", params={"succeedOn": 2})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"attempt": 2} and response.json()["retryCount"] == 1
    attempts = ExecutionAttempt.objects.filter(execution_id=response.json()["executionId"]).order_by("number")
    assert [attempt.error_type for attempt in attempts] == ["WORKER_CRASHED", ""]


def test_javascript_runs_are_recorded_as_events_and_metrics(js_tools, api, settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    before = scrape()
    succeeded = execute(api, "digest", params={"text": "counted"})
    failed = execute(api, "fail")
    assert succeeded.status_code == 200 and failed.status_code == 500, (succeeded.json(), failed.json())
    assert failed.json()["error"]["type"] == "PLUGIN_ERROR" and "asked to fail" in failed.json()["error"]["message"]
    for response, action, status, error_type in ((succeeded, "digest", "success", None),
                                                 (failed, "fail", "error", "PLUGIN_ERROR")):
        event = AuditEvent.objects.get(type="plugin_action_executed", metadata__executionId=response.json()["executionId"])
        assert event.target_id == "js-tools"
        assert (event.metadata["actionName"], event.metadata["status"], event.metadata["errorType"]) == (
            action, status, error_type)

    def delta(samples, name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    def scrape_once_all_counted():
        samples = scrape()
        return samples if delta(samples, "plugin_errors_total", plugin_id="js-tools", error_type="PLUGIN_ERROR") else None

    # Each end is counted by the worker right after its commit: give the last one a moment.
    after = wait_for(scrape_once_all_counted)
    assert delta(after, "plugin_executions_total", plugin_id="js-tools", action_name="digest", status="success") == 1
    assert delta(after, "plugin_executions_total", plugin_id="js-tools", action_name="fail", status="error") == 1
    assert delta(after, "plugin_execution_duration_seconds_count", plugin_id="js-tools") == 2
    assert delta(after, "plugin_execution_memory_bytes_count", plugin_id="js-tools") >= 1
    assert delta(after, "cache_misses_total") == 1
