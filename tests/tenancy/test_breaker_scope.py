"""A circuit breaker measures the plugin, not its callers: one organization's
failures of a shared plugin switch it off for that organization alone, and
failures a caller causes for itself (params the plugin rejects, a timeout
shorter than the action's own, a memory limit its tier lowered) count for
nothing. The breaker for everyone opens on failures from more than one
organization, or from a private plugin's owner."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from executions import breaker, tasks
from executions.models import CircuitBreaker, Execution
from sandbox.client import RunResult
from tests.factories import install_source

SHARED = """
import time

def maybe(params, ctx):
    if params.get("fail"):
        raise RuntimeError("broken for everyone who asks this")
    return {"ok": True}

def nap(params, ctx):
    time.sleep(params["seconds"])
    return {"slept": params["seconds"]}

def strict(params, ctx):
    if "n" not in params:
        ctx.reject("n is required", {"field": "n"})
    return {"n": params["n"]}
"""
ACTIONS = {
    "maybe": {"handler": "maybe", "params": {"type": "object"}},
    "nap": {"handler": "nap", "params": {"type": "object"}, "timeoutMs": 5000},
    "strict": {"handler": "strict", "params": {"type": "object"}, "default": {"n": "unknown"}},
}


def shared_plugin(owner=None):
    return install_source("shared", SHARED, ACTIONS, owner=owner)


def run(client, action, params=None, **body):
    return client.post("/execute", {"pluginId": "shared", "actionName": action, "params": params or {}, **body},
                       format="json")


def error_type(response):
    return response.json().get("error", {}).get("type")


def breaker_changes():
    return AuditEvent.objects.filter(type="circuit_breaker_state_changed", target_id="shared").order_by("timestamp")


# Through the real API, cluster and sandbox.


@pytest.mark.slow
@pytest.mark.parametrize("calls", [5, 50])
def test_one_organizations_failures_do_not_switch_a_public_plugin_off_for_the_others(live, make_org, make_client,
                                                                                      settings, calls):
    shared_plugin()
    attacker, bystander = make_org("attacker"), make_org("bystander")
    hostile = make_client(attacker)
    answers = [error_type(run(hostile, "maybe", {"fail": True})) for _ in range(calls)]
    threshold = settings.BREAKER_FAILURE_THRESHOLD
    assert answers == ["PLUGIN_ERROR"] * threshold + ["CIRCUIT_OPEN"] * (calls - threshold)

    fine = run(make_client(bystander), "maybe")
    assert fine.status_code == 200, fine.json()
    assert fine.json()["result"] == {"ok": True}
    refused = run(hostile, "maybe")
    assert refused.status_code == 503 and "for this organization only" in refused.json()["error"]["message"]
    [opened] = breaker_changes()
    assert opened.organization == attacker and opened.metadata["to"] == "open"
    assert opened.metadata["scope"] == "organization" and opened.metadata["organizationId"] == "attacker"


@pytest.mark.slow
def test_failures_from_several_organizations_open_the_breaker_for_everyone(live, make_org, make_client):
    shared_plugin()
    one, two, third = (make_client(make_org(slug)) for slug in ("one", "two", "third"))
    for client in (one, one, one, two, two):
        assert error_type(run(client, "maybe", {"fail": True})) == "PLUGIN_ERROR"

    for client in (one, two, third):
        refused = run(client, "maybe")
        assert refused.status_code == 503 and error_type(refused) == "CIRCUIT_OPEN"
        assert "for every organization" in refused.json()["error"]["message"]
    opened = breaker_changes().get(metadata__scope="all")
    assert opened.organization is None and opened.metadata["to"] == "open"  # a public plugin: operators hear
    assert CircuitBreaker.objects.get(plugin__slug="shared", organization=None).state == "open"


@pytest.mark.slow
def test_a_private_plugin_failing_for_its_owner_opens_for_everyone(live, org, api, settings):
    shared_plugin(owner=org)
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD):
        assert error_type(run(api, "maybe", {"fail": True})) == "PLUGIN_ERROR"

    refused = run(api, "maybe")
    assert refused.status_code == 503 and "for every organization" in refused.json()["error"]["message"]
    [opened] = breaker_changes()
    assert opened.organization == org and opened.metadata["scope"] == "all" and opened.metadata["to"] == "open"
    assert list(CircuitBreaker.objects.values_list("organization", "state")) == [(None, "open")]


@pytest.mark.slow
def test_timeouts_shorter_than_the_actions_own_do_not_count(live, org, api, settings):
    shared_plugin()
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD + 1):
        assert error_type(run(api, "nap", {"seconds": 2}, timeout=300)) == "TIMEOUT"

    assert run(api, "nap", {"seconds": 0}).status_code == 200
    assert not CircuitBreaker.objects.filter(consecutive_failures__gt=0).exists()
    assert not breaker_changes().exists()


@pytest.mark.slow
def test_params_the_plugin_rejects_do_not_count_and_get_no_fallback(live, org, api, settings):
    shared_plugin()
    for _ in range(settings.BREAKER_FAILURE_THRESHOLD + 1):
        rejected = run(api, "strict")
        assert error_type(rejected) == "VALIDATION_ERROR", rejected.json()
        assert rejected.json().get("fallback") is None and rejected.json().get("result") is None

    assert run(api, "strict", {"n": 1}).json()["result"] == {"n": 1}
    assert not CircuitBreaker.objects.filter(consecutive_failures__gt=0).exists()
    assert not AuditEvent.objects.filter(type="owner_notified").exists()


# The counting rules, on the breaker's service functions.


@pytest.fixture
def plugin(db):
    return shared_plugin().plugin


def fail(plugin, organization, times=1):
    for _ in range(times):
        breaker.record_outcome(plugin, organization, False)


def row(plugin, organization=None):
    return CircuitBreaker.objects.get(plugin=plugin, organization=organization)


def test_one_organization_opens_its_own_breaker_only(plugin, make_org):
    attacker, other = make_org("attacker"), make_org("other")
    fail(plugin, attacker, 50)
    assert row(plugin, attacker).state == "open" and row(plugin).state == "closed"
    breaker.admit(plugin, other)
    with pytest.raises(breaker.CircuitOpen) as refused:
        breaker.admit(plugin, attacker)
    assert refused.value.scope == "organization"


def test_a_second_failing_organization_opens_it_for_everyone(plugin, make_org):
    one, two, third = make_org("one"), make_org("two"), make_org("third")
    fail(plugin, one, 4)
    fail(plugin, two)
    assert row(plugin).state == "open" and row(plugin).several_organizations
    with pytest.raises(breaker.CircuitOpen) as refused:
        breaker.admit(plugin, third)
    assert refused.value.scope == "all"


def test_a_success_in_between_breaks_the_run_of_failures(plugin, make_org):
    one, two = make_org("one"), make_org("two")
    fail(plugin, one, 4)
    breaker.record_outcome(plugin, two, True)
    fail(plugin, two)
    assert row(plugin).state == "closed" and row(plugin).consecutive_failures == 1
    assert not row(plugin).several_organizations


def test_a_half_open_breaker_for_everyone_reopens_only_on_several_organizations(plugin, make_org, settings):
    one, two = make_org("one"), make_org("two")
    CircuitBreaker.objects.create(plugin=plugin, state="open", opened_at=timezone.now(), consecutive_failures=5,
                                  several_organizations=True)
    settings.BREAKER_OPEN_SECONDS = 0
    breaker.admit(plugin, one)
    assert row(plugin).state == "half_open" and not row(plugin).several_organizations
    fail(plugin, one)
    assert row(plugin).state == "half_open" and row(plugin).probes_in_flight == 0
    breaker.admit(plugin, two)
    fail(plugin, two)
    assert row(plugin).state == "open"


def test_a_run_that_says_nothing_gives_its_probe_back(plugin, org, settings):
    settings.BREAKER_HALF_OPEN_PROBES = 1
    CircuitBreaker.objects.create(plugin=plugin, state="half_open", probes_in_flight=1)
    breaker.record_outcome(plugin, org, None)
    assert row(plugin).probes_in_flight == 0 and row(plugin).consecutive_failures == 0
    breaker.admit(plugin, org)


def test_admission_stays_one_query_when_all_is_closed(plugin, org, django_assert_num_queries):
    fail(plugin, org, 2)
    with django_assert_num_queries(1):
        breaker.admit(plugin, org)


def test_one_breaker_for_everyone_per_plugin(plugin, org):
    CircuitBreaker.objects.create(plugin=plugin)
    CircuitBreaker.objects.create(plugin=plugin, organization=org)
    for organization in (None, org):
        with pytest.raises(IntegrityError), transaction.atomic():
            CircuitBreaker.objects.create(plugin=plugin, organization=organization)


def test_reset_closes_one_breaker(plugin, make_org):
    one, two = make_org("one"), make_org("two")
    fail(plugin, one, 5)
    fail(plugin, two, 5)
    breaker.reset(row(plugin, one), actor_id="admin:ops")
    assert row(plugin, one).state == "closed" and row(plugin, two).state == "open"
    closed = AuditEvent.objects.get(type="circuit_breaker_state_changed", organization=one, metadata__to="closed")
    assert closed.actor_id == "admin:ops" and closed.metadata["scope"] == "organization"


@pytest.mark.parametrize(
    "error, attempt_ms, run_mb, verdict",
    [
        ("", 5000, 256, True),
        ("PLUGIN_ERROR", 5000, 256, False),
        ("VALIDATION_ERROR", 5000, 256, None),
        ("SANDBOX_UNAVAILABLE", 5000, 256, None),
        ("TIMEOUT", 5000, 256, False),  # the action's own timeoutMs
        ("TIMEOUT", 300, 256, None),  # the caller asked for less
        ("MEMORY_LIMIT_EXCEEDED", 5000, 256, False),  # the plugin's own limits.memoryMb
        ("MEMORY_LIMIT_EXCEEDED", 5000, 64, None),  # the caller's tier lowered it
    ],
)
def test_what_a_run_says_about_the_plugin(make_org, error, attempt_ms, run_mb, verdict):
    version = install_source("shared", SHARED, ACTIONS, limits={"memoryMb": 256})
    execution = Execution(organization=make_org(), plugin_version=version, action="nap", timeout_ms=attempt_ms,
                          memory_limit_mb=run_mb)
    status = "success" if not error else "timeout" if error == "TIMEOUT" else "error"
    outcome = RunResult(status=status, error_type=error, result_json="{}" if not error else None)
    assert tasks.plugin_verdict(execution, ACTIONS["nap"], outcome, attempt_ms) is verdict
