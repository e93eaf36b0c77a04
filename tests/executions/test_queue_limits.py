"""Each priority's queue has a limit of its own, checked in the admitting
transaction: a full queue refuses at once, and one tier's flood never takes
the places another tier's runs need."""

import pytest

from executions.models import Execution
from quotas.models import DailyUsage, Tier

pytestmark = pytest.mark.django_db

BODY = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}, "async": True}


def test_a_full_queue_refuses_at_once_and_other_priorities_still_admit(make_org, make_client, examples, settings):
    settings.QUEUE_LIMITS = {"high": 5, "medium": 5, "low": 2}
    Tier.objects.filter(name="free").update(concurrent_limit=100)
    free = make_client(make_org("flood", tier="free"))
    assert [free.post("/execute", BODY, format="json").status_code for _ in range(2)] == [202, 202]

    refused = free.post("/execute", BODY, format="json")
    assert refused.status_code == 503 and refused["Retry-After"] == "2"
    error = refused.json()["error"]
    assert error["type"] == "QUEUE_FULL" and error["retryable"] is True and "low-priority" in error["message"]
    assert Execution.objects.filter(priority="low").count() == 2
    assert DailyUsage.objects.get(organization__slug="flood").count == 2  # the refused run used no quota

    enterprise = make_client(make_org("bigcorp", tier="enterprise"))
    assert enterprise.post("/execute", BODY, format="json").status_code == 202
