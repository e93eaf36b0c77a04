"""Input errors are the caller's, not the plugin's: a plugin refusing its
params (`ctx.reject`) answers 400 VALIDATION_ERROR with its message, is run
once, and leaves the plugin's circuit breaker alone, so that one tenant
sending bad params cannot switch a shared plugin off for everyone."""

import json

import pytest
from django.conf import settings

from executions.models import CircuitBreaker, Execution, ExecutionAttempt
from tests.factories import install_source

pytestmark = pytest.mark.slow

REFUSES = """
def check(params, ctx):
    if params.get("n", 0) < 0:
        ctx.reject("n must not be negative", {"field": "n", "got": params["n"]})
    return {"n": params["n"]}
"""

REFUSES_WITH_A_SECRET = """
def check(params, ctx):
    secret = ctx.secrets["TOKEN"]
    details = {"echo": secret, secret: [secret.upper()]} if params["small"] else {"filler": "x" * 10000}
    ctx.reject("refused for " + secret, details)
"""

REFUSES_WITH_DETAILS_THAT_ARE_NOT_JSON = """
def check(params, ctx):
    ctx.reject("refused", {"when": object()})
"""

SECRET = "Zq7kV9mXw2pLr5tB"


def execute(api, plugin, action, params, **extra):
    return api.post("/execute", {"pluginId": plugin, "actionName": action, "params": params, **extra}, format="json")


def assert_no_breaker_failures(plugin_slug):
    # Whatever the breaker's scope (per plugin, or per organization and
    # plugin), no breaker of this plugin may have counted a failure.
    failing = CircuitBreaker.objects.filter(plugin__slug=plugin_slug, consecutive_failures__gt=0)
    assert not failing.exists(), list(failing.values("state", "consecutive_failures"))


def assert_refused(response, message):
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["success"] is False and body["status"] == "error"
    assert body["error"]["type"] == "VALIDATION_ERROR" and body["error"]["retryable"] is False
    assert message in body["error"]["message"]
    assert body["retryCount"] == 0
    assert ExecutionAttempt.objects.filter(execution_id=body["executionId"]).count() == 1
    return body


def test_a_rejection_is_a_400_run_once_and_not_held_against_the_plugin(live, api):
    install_source("strict", REFUSES, {"check": "check"})
    body = assert_refused(execute(api, "strict", "check", {"n": -1}), "n must not be negative")
    assert body["error"]["message"] == "n must not be negative"
    assert body["error"]["details"] == {"field": "n", "got": -1}
    execution = Execution.objects.get(pk=body["executionId"])
    assert (execution.status, execution.error_type, execution.fallback) == ("error", "VALIDATION_ERROR", "")
    # GET answers the same body as the synchronous POST did; the record exists, so 200.
    polled = api.get(f"/executions/{body['executionId']}")
    assert polled.status_code == 200
    assert polled.json()["error"] == body["error"] and polled.json()["executionId"] == body["executionId"]
    assert_no_breaker_failures("strict")


def test_one_tenant_s_bad_params_do_not_open_a_public_plugin_s_breaker(live, api, examples, make_org, make_client):
    # The case: conflicting paths for json-tools.unflatten, from one
    # organization, more times than the breaker's threshold.
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD + 1):
        assert_refused(
            execute(api, "json-tools", "unflatten", {"flat": {"a": 1, "a.b": 2}}),
            "path 'a.b' goes through a value set by another path",
        )
    assert_no_breaker_failures("json-tools")
    other = make_client(make_org("other"))
    response = execute(other, "json-tools", "unflatten", {"flat": {"a.b": 2}})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"document": {"a": {"b": 2}}}


@pytest.mark.parametrize(
    "plugin,action,params,message",
    [
        ("json-tools", "query", {"document": {}, "path": "a..b"}, "invalid path 'a..b'"),
        ("json-tools", "unflatten", {"flat": {"a.b": 2, "a": 1}}, "path 'a' conflicts with another path"),
        ("stats", "correlation", {"x": [1, 2, 3], "y": [1, 2]}, "x and y must have the same length (got 3 and 2)"),
        ("stats", "linearRegression", {"x": [2, 2], "y": [1, 2]}, "all x values are equal"),
        ("stats", "movingAverage", {"values": [1, 2], "window": 3}, "window (3) is larger than the number of values (2)"),
        ("stats", "histogram", {"values": [1, 2], "min": 5, "max": 1}, "max (1) must not be less than min (5)"),
        ("stats", "describe", {"values": [1e308, -1e308]}, "the variance is beyond the largest number"),
        ("text-tools", "readability", {"text": "... !!!"}, "text contains no words to score"),
    ],
)
def test_the_example_plugins_refusals_are_400s(live, api, examples, plugin, action, params, message):
    assert_refused(execute(api, plugin, action, params), message)
    assert_no_breaker_failures(plugin)


def test_stats_histogram_of_the_widest_values_is_finite(live, api, examples):
    response = execute(api, "stats", "histogram", {"values": [1e308, -1e308], "bins": 2})
    assert response.status_code == 200, response.json()
    assert response.json()["result"]["bins"] == [
        {"start": -1e308, "end": 0, "count": 1},
        {"start": 0, "end": 1e308, "count": 1},
    ]


def test_a_rejection_s_message_and_details_are_redacted_and_bounded(live, api):
    install_source("leaky-refusal", REFUSES_WITH_A_SECRET, {"check": "check"}, secrets=["TOKEN"])
    body = assert_refused(
        execute(api, "leaky-refusal", "check", {"small": True}, secrets={"TOKEN": SECRET}), "refused for"
    )
    assert body["error"]["message"] == "refused for [REDACTED]"
    assert body["error"]["details"] == {"echo": "[REDACTED]", "[REDACTED]": ["[REDACTED]"]}
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.error_details == {"echo": "[REDACTED]", "[REDACTED]": ["[REDACTED]"]}
    assert SECRET.lower() not in (execution.error_message + json.dumps(execution.error_details)).lower()
    # Details over the cap are left out whole rather than cut into broken JSON.
    body = assert_refused(
        execute(api, "leaky-refusal", "check", {"small": False}, secrets={"TOKEN": SECRET}), "refused for"
    )
    assert "details" not in body["error"]


def test_details_that_are_not_json_are_the_plugin_s_error(live, api):
    install_source("sloppy", REFUSES_WITH_DETAILS_THAT_ARE_NOT_JSON, {"check": "check"})
    response = execute(api, "sloppy", "check", {})
    assert response.status_code == 500, response.json()
    error = response.json()["error"]
    assert error["type"] == "PLUGIN_ERROR"
    assert "details must be JSON-serialisable" in error["message"]
