"""POST /execute/batch through the real API, queue, cluster and sandbox:
items answered in order, each admitted on its own (its quota count, its
idempotency, its refusal), a synchronous batch bounded by its total timeout."""

import time

import pytest

from audit.models import AuditEvent
from executions.models import Execution
from quotas.enforcement import usage_today
from tests.factories import install_source

SLEEPER = """
import time

def nap(params, ctx):
    time.sleep(params.get("seconds", 0))
    return {"slept": params.get("seconds", 0)}
"""


def batch(api, items, **options):
    return api.post("/execute/batch", {"items": items, **options}, format="json")


def slugify(text, **extra):
    return {"pluginId": "text-tools", "actionName": "slugify", "params": {"text": text}, **extra}


def poll(api, location, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(location).json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.05)
    return body


@pytest.mark.slow
def test_a_synchronous_batch_answers_every_item_in_order(live, api, examples, org):
    response = batch(api, [
        slugify("Hello World"),
        {"pluginId": "nope", "actionName": "x"},
        {"pluginId": "stats", "actionName": "describe", "params": {"values": [1, 2, 3, 4]}},
        {"pluginId": "stats", "actionName": "describe", "params": {"values": "not a list"}},
    ])
    assert response.status_code == 200, response.json()
    first, unknown, described, refused = response.json()["items"]
    assert first["status"] == "success" and first["result"]["slug"] == "hello-world"
    assert first["location"] == f"http://testserver/executions/{first['executionId']}"
    assert unknown == {"success": False, "error": {"type": "PLUGIN_NOT_FOUND", "message": "no plugin 'nope'",
                                                   "retryable": False}}
    assert described["result"]["mean"] == 2.5
    assert refused["error"]["type"] == "VALIDATION_ERROR" and "executionId" not in refused
    # Each run admitted is one count of the day's quota, as one /execute would be.
    assert usage_today(org).used == 2 == Execution.objects.count()
    assert AuditEvent.objects.filter(type="plugin_action_executed").count() == 2


@pytest.mark.slow
def test_an_asynchronous_batch_queues_each_item_with_its_location(live, api, examples):
    response = batch(api, [slugify("One"), slugify("Two")], **{"async": True})
    assert response.status_code == 200, response.json()
    items = response.json()["items"]
    assert [item["status"] for item in items] == ["queued", "queued"]
    assert [item["quota"]["used"] for item in items] == [1, 2]
    results = [poll(api, item["location"]) for item in items]
    assert [result["result"]["slug"] for result in results] == ["one", "two"]


@pytest.mark.slow
def test_a_synchronous_batch_past_its_timeout_answers_unfinished_runs_with_their_location(live, api, examples):
    install_source("sleeper", SLEEPER, {"nap": "nap"})
    started = time.monotonic()
    response = batch(api, [
        {"pluginId": "sleeper", "actionName": "nap", "params": {"seconds": 3}},
        slugify("Quick"),
    ], timeoutMs=1500)
    took = time.monotonic() - started
    assert response.status_code == 200, response.json()
    slow, quick = response.json()["items"]
    assert 1.4 < took < 2.9, took
    assert slow["status"] in ("queued", "running") and "result" not in slow
    assert quick["status"] == "success" and quick["result"]["slug"] == "quick"
    assert poll(api, slow["location"])["result"] == {"slept": 3}


def test_each_item_is_refused_on_its_own_by_its_organization_s_limits(api, examples, org):
    org.daily_limit_override = 2
    org.save()
    # The fourth is well-formed, but its params fail its action's own schema: only admission can tell.
    wrong_params = {**slugify("d"), "params": {"text": 5}}
    response = batch(api, [slugify("a"), slugify("b"), slugify("c"), wrong_params], **{"async": True})
    assert response.status_code == 200, response.json()
    first, second, third, fourth = response.json()["items"]
    assert first["status"] == second["status"] == "queued"
    assert third["error"]["type"] == "QUOTA_EXCEEDED" and third["retryAfter"] > 0
    assert fourth["error"]["type"] == "VALIDATION_ERROR"
    assert AuditEvent.objects.filter(type="quota_exceeded").count() == 1


def test_an_item_s_idempotency_key_answers_its_first_execution(api, examples):
    items = [slugify("same", idempotencyKey="order-17"), slugify("other", idempotencyKey="order-18")]
    first = batch(api, items, **{"async": True}).json()["items"]
    again = batch(api, items, **{"async": True}).json()["items"]
    assert [item["executionId"] for item in again] == [item["executionId"] for item in first]
    assert Execution.objects.count() == 2
    conflict = batch(api, [slugify("changed", idempotencyKey="order-17")], **{"async": True}).json()["items"]
    assert conflict[0]["error"]["type"] == "IDEMPOTENCY_CONFLICT"


@pytest.mark.parametrize("body, message", [
    ({"items": []}, "items"),
    ({"items": [{"pluginId": "text-tools", "actionName": "slugify"}] * 21}, "items"),
    ({"items": {"pluginId": "text-tools"}}, "items"),
    ({"items": [{"pluginId": "text-tools", "actionName": "slugify"}], "timeoutMs": 0}, "timeoutMs"),
    ([{"pluginId": "text-tools", "actionName": "slugify"}], "JSON object"),
])
def test_a_malformed_batch_is_refused_whole(api, body, message):
    response = api.post("/execute/batch", body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and message in error["message"]
    assert not Execution.objects.exists()


@pytest.mark.parametrize("item, field", [
    ({"async": True}, "items[1].async"),
    ({"timout": 500}, "items[1].timout"),
    ({"actionName": 7}, "items[1].actionName"),
])
def test_a_malformed_item_refuses_the_whole_batch_naming_it(api, examples, item, field):
    response = batch(api, [slugify("fine"), {**slugify("x"), **item}])
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and field in [detail["field"] for detail in error["details"]]
    assert not Execution.objects.exists()


def test_an_item_s_callback_url_follows_the_rules_of_execute(api, examples, settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    hook = {"callbackUrl": "http://127.0.0.1:9/hook"}
    allowed, private = batch(api, [slugify("a", **hook), slugify("b", callbackUrl="http://10.0.0.1/hook")],
                             **{"async": True}).json()["items"]
    assert allowed["status"] == "queued"
    assert Execution.objects.get(pk=allowed["executionId"]).callback_url == hook["callbackUrl"]
    assert private["error"]["type"] == "VALIDATION_ERROR" and "forbidden address" in private["error"]["message"]
    [synchronous] = batch(api, [slugify("c", **hook)]).json()["items"]
    assert synchronous["error"]["type"] == "VALIDATION_ERROR" and "asynchronous" in synchronous["error"]["message"]
