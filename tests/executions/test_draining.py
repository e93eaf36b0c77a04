"""A web worker told to stop admits no new run while it finishes the requests it holds."""

import pytest

from core import draining
from executions.models import Execution
from quotas.models import DailyUsage


@pytest.mark.django_db
def test_a_draining_worker_answers_shutting_down_and_admits_nothing(api, examples, monkeypatch):
    monkeypatch.setattr(draining, "_draining", True)
    response = api.post("/execute", {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}},
                        format="json")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    error = response.json()["error"]
    assert error["type"] == "SHUTTING_DOWN" and error["retryable"] is True
    assert not Execution.objects.exists() and not DailyUsage.objects.filter(count__gt=0).exists()
    # Reading is still served while it drains.
    assert api.get("/plugins").status_code == 200
