"""Finding 6: GET /metrics was open unless METRICS_TOKEN was set, and its
labels name every organization's plugins, private ones included. Without a
token it is now refused outside DEBUG, and `check --deploy` warns."""

import pytest
from django.core.checks import run_checks
from rest_framework.test import APIClient

from executions import metrics
from tests.factories import install_source, make_execution

pytestmark = pytest.mark.django_db

PRIVATE = "acme-merger-plan"


@pytest.fixture
def private_plugin_ran(org):
    """A run of acme's private plugin, counted as the worker counts it when the run ends."""
    version = install_source(PRIVATE, "def go(params, ctx):\n    return 1\n", {"go": "go"}, owner=org)
    metrics.observe_execution(make_execution(org, version, run_ms=5, action="go"))


def test_an_anonymous_scrape_does_not_name_private_plugins(settings, private_plugin_ran):
    settings.METRICS_TOKEN = ""
    response = APIClient().get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "AUTHENTICATION_FAILED"
    assert PRIVATE.encode() not in response.content
    # Prometheus, given the token, still sees every plugin.
    settings.METRICS_TOKEN = "a-long-random-scrape-token"
    response = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer a-long-random-scrape-token")
    assert response.status_code == 200
    assert f'plugin_id="{PRIVATE}"'.encode() in response.content


def test_check_deploy_warns_while_metrics_token_is_unset(settings):
    settings.METRICS_TOKEN = ""
    assert "observability.W001" in {message.id for message in run_checks(include_deployment_checks=True)}
    settings.METRICS_TOKEN = "a-long-random-scrape-token"
    assert "observability.W001" not in {message.id for message in run_checks(include_deployment_checks=True)}
