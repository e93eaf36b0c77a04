"""The two rules that let a worker pass over the oldest queued run: long runs
never hold a priority's last workers, and a run waits for memory room on
its node instead of overcommitting it. Through the real submission and the
real claim, on the test database."""

import pytest

from executions.models import Execution
from executions.queue.claims import claim_next, memory_in_use_on_this_node
from tests.factories import install_source

pytestmark = pytest.mark.django_db

SOURCE = "def go(params, ctx):\n    return {}\n"


@pytest.fixture
def sleeper():
    """A plugin with a short action and one declaring a 60 s timeout (long)."""
    return install_source(
        "sleeper", SOURCE,
        {"quick": "go", "slow": {"handler": "go", "timeoutMs": 60000}, "big": {"handler": "go"}},
    )


@pytest.fixture
def client(make_org, make_client):
    return make_client(make_org("lanes", tier="enterprise", concurrent_limit_override=100))


def submit(client, action):
    response = client.post("/execute", {"pluginId": "sleeper", "actionName": action, "params": {}, "async": True},
                           format="json")
    assert response.status_code == 202, response.json()
    return Execution.objects.get(pk=response.json()["executionId"])


def test_an_action_declaring_a_timeout_above_long_run_ms_is_a_long_run(sleeper, client, settings):
    settings.LONG_RUN_MS = 10000
    assert submit(client, "slow").long_running is True
    assert submit(client, "quick").long_running is False


def test_long_runs_never_take_the_last_worker_of_a_priority(sleeper, client, settings):
    settings.PRIORITY_WORKERS = {**settings.PRIORITY_WORKERS, "high": 3}
    settings.SHORT_RUN_WORKERS = 1
    long_runs = [submit(client, "slow") for _ in range(3)]
    short = submit(client, "quick")

    assert claim_next("high").pk == long_runs[0].pk
    assert claim_next("high").pk == long_runs[1].pk
    # Two long runs hold all but one worker: the younger short run goes first.
    assert claim_next("high").pk == short.pk
    assert claim_next("high") is None
    assert Execution.objects.get(pk=long_runs[2].pk).status == "queued"

    Execution.objects.filter(pk=long_runs[0].pk).update(status="success")
    assert claim_next("high").pk == long_runs[2].pk


def test_a_priority_with_one_worker_still_runs_long_runs(sleeper, client, settings):
    settings.PRIORITY_WORKERS = {**settings.PRIORITY_WORKERS, "high": 1}
    long_run = submit(client, "slow")
    assert claim_next("high").pk == long_run.pk


def test_a_run_waits_for_memory_room_on_its_node_and_a_smaller_one_goes_first(sleeper, client, settings):
    settings.PRIORITY_WORKERS = {"high": 4, "medium": 3, "low": 3}
    settings.SANDBOX_MEMORY_BUDGET_MB = 1000  # 100 MB always fits (1000 / 10 workers)
    first = submit(client, "big")
    Execution.objects.filter(pk=first.pk).update(memory_limit_mb=600)
    waiting = submit(client, "big")
    Execution.objects.filter(pk=waiting.pk).update(memory_limit_mb=500)
    small = submit(client, "quick")
    Execution.objects.filter(pk=small.pk).update(memory_limit_mb=100)

    assert claim_next("high").pk == first.pk
    assert memory_in_use_on_this_node() == 600
    # 600 + 500 would pass the budget: the 100 MB run, younger, goes first.
    assert claim_next("high").pk == small.pk
    assert claim_next("high") is None
    assert Execution.objects.get(pk=waiting.pk).status == "queued"

    Execution.objects.filter(pk=first.pk).update(status="success")
    assert claim_next("high").pk == waiting.pk
    assert memory_in_use_on_this_node() == 600


def test_runs_small_enough_for_every_worker_at_once_are_never_held(sleeper, client, settings):
    settings.PRIORITY_WORKERS = {"high": 4, "medium": 3, "low": 3}
    settings.SANDBOX_MEMORY_BUDGET_MB = 1000
    runs = [submit(client, "quick") for _ in range(4)]
    Execution.objects.filter(pk__in=[run.pk for run in runs]).update(memory_limit_mb=100)
    assert [claim_next("high").pk for _ in runs] == [run.pk for run in runs]


def test_long_runs_queue_against_a_limit_of_their_own(sleeper, client, settings):
    settings.QUEUE_LIMITS = {"high": 2, "medium": 2, "low": 2}
    settings.LONG_RUN_MS = 10000
    submit(client, "slow")
    submit(client, "slow")
    refused = client.post("/execute", {"pluginId": "sleeper", "actionName": "slow", "params": {}, "async": True},
                          format="json")
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "QUEUE_FULL"
    assert "long runs" in refused.json()["error"]["message"]
    # A queue full of long runs leaves trivial calls their own room.
    submit(client, "quick")
    submit(client, "quick")
