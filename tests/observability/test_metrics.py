"""GET /metrics: samples written by the qcluster worker processes and by this
process, merged through the multiprocess directory."""

import json
import re

import pytest
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.factories import ROOT, install_source, wait_for

RAISES = """
def fail(params, ctx):
    raise ValueError("no")
"""

SPINS = """
def spin(params, ctx):
    while True:
        pass
"""


TOKEN = "scrape-me"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape():
    response = APIClient().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.slow
def test_executions_in_the_cluster_are_counted_with_their_labels(live, api, examples):
    install_source("failing", RAISES, {"fail": "fail"})
    install_source("spinning", SPINS, {"spin": "spin"})
    before = scrape()
    for text in ("a b", "c d", "e f"):
        response = api.post("/execute", {"pluginId": "text-tools", "actionName": "slugify", "params": {"text": text}},
                            format="json")
        assert response.status_code == 200, response.json()
    assert api.post("/execute", {"pluginId": "failing", "actionName": "fail"}, format="json").status_code == 500
    assert api.post("/execute", {"pluginId": "spinning", "actionName": "spin", "timeout": 500},
                    format="json").status_code == 504
    # A cacheable action: the first call runs (a miss), the second is answered from the cache.
    describe = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1, 2, 3]}}
    assert api.post("/execute", describe, format="json").json()["cacheHit"] is False
    assert api.post("/execute", describe, format="json").json()["cacheHit"] is True

    def delta(samples, name, **labels):
        return value(samples, name, **labels) - value(before, name, **labels)

    def scrape_once_all_counted():
        samples = scrape()
        return samples if delta(samples, "plugin_timeouts_total", plugin_id="spinning") else None

    # Each end is counted by the worker right after its commit: give the last one a moment.
    after = wait_for(scrape_once_all_counted)

    slug = {"plugin_id": "text-tools", "action_name": "slugify"}
    assert delta(after, "plugin_executions_total", **slug, status="success") == 3
    assert delta(after, "plugin_executions_total", plugin_id="failing", action_name="fail", status="error") == 1
    assert delta(after, "plugin_executions_total", plugin_id="spinning", action_name="spin", status="timeout") == 1
    assert delta(after, "plugin_errors_total", plugin_id="failing", error_type="PLUGIN_ERROR") == 1
    assert delta(after, "plugin_errors_total", plugin_id="spinning", error_type="TIMEOUT") == 1
    assert delta(after, "plugin_errors_total", plugin_id="text-tools", error_type="PLUGIN_ERROR") == 0
    assert delta(after, "plugin_timeouts_total", plugin_id="spinning") == 1

    assert delta(after, "plugin_execution_duration_seconds_count", plugin_id="text-tools") == 3
    assert delta(after, "plugin_execution_duration_seconds_bucket", plugin_id="text-tools", le="+Inf") == 3
    assert delta(after, "plugin_execution_duration_seconds_sum", plugin_id="text-tools") > 0
    assert delta(after, "plugin_execution_duration_seconds_bucket", plugin_id="spinning", le="0.25") == 0
    assert delta(after, "plugin_execution_memory_bytes_count", plugin_id="text-tools") == 3
    assert delta(after, "plugin_executions_total", plugin_id="stats", action_name="describe", status="success") == 2
    # slugify is cacheable too: its three different texts were three more misses.
    assert delta(after, "cache_hits_total") == 1 and delta(after, "cache_misses_total") == 4
    assert value(after, "cache_size_bytes") > 0
    # Runs that went through the queue (not the cache hit); the organization's pro tier is medium priority.
    assert delta(after, "worker_pool_queue_wait_seconds_count", priority="medium") == 6

    # State gauges, computed at scrape time from the heartbeats and the database.
    assert value(after, "worker_pool_size", state="total") >= 3
    assert value(after, "worker_pool_size", state="idle") + value(after, "worker_pool_size", state="active") >= 3
    assert ("worker_pool_queue_size", ()) in after
    assert value(after, "system_memory_usage_bytes", type="total") > value(after, "system_memory_usage_bytes", type="used") > 0
    assert ("system_cpu_usage_percent", ()) in after
    # django-prometheus's own request and database metrics, from this process.
    assert any(name == "django_http_requests_total_by_view_transport_method_total" for name, _ in after)
    assert any(name == "django_db_execute_total" for name, _ in after)


@pytest.mark.django_db
def test_metrics_need_the_token():
    refused = APIClient().get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "AUTHENTICATION_FAILED"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    samples = scrape()
    assert any(name == "worker_pool_queue_size" for name, _ in samples)


@pytest.mark.django_db
def test_without_a_token_metrics_are_open_only_under_debug(settings):
    settings.METRICS_TOKEN = ""
    assert APIClient().get("/metrics").status_code == 401
    settings.DEBUG = True
    assert APIClient().get("/metrics").status_code == 200


def exported_names():
    """Every sample name the metrics declared in this process can export."""
    # Ours are declared on import, django-prometheus's request metrics with its middleware.
    import executions.metrics  # noqa: F401
    import observability.prometheus  # noqa: F401

    Metrics.get_instance()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, [""])}


def test_the_grafana_dashboard_queries_only_exported_metrics():
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in expressions for name in re.findall(r"\b([a-z_]+(?:_total|_bucket|_bytes|_percent|_size))\b", expr)}
    assert used - exported_names() == set()
    # Every metric of the contract (docs/operations.md, "Metrics") has a panel.
    for name in ("plugin_executions_total", "plugin_execution_duration_seconds_bucket", "plugin_execution_memory_bytes_bucket",
                 "worker_pool_size", "worker_pool_queue_size", "worker_pool_queue_wait_seconds_bucket",
                 "plugin_errors_total", "plugin_timeouts_total", "plugin_retries_total", "cache_hits_total",
                 "cache_misses_total", "cache_size_bytes", "system_memory_usage_bytes", "system_cpu_usage_percent"):
        assert any(name in expr for expr in expressions), name
