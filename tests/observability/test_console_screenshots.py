"""Screenshots of the operator's console in headless Chromium, on realistic
data: several plugins, runs through the real cluster (successes, failures,
a timeout, cache hits, a circuit breaker opened by failures), a plugin with
three versions, revoked and active keys, and a day of history for the
dashboard. Each page is measured and shot whole, and must fit the window's
width with no box cutting its content off (tests/chromium.py). The pictures
are in VAR_DIR/screenshots, or SCREENSHOTS_DIR (docs/screenshots for the
ones the docs show)."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from executions.models import Execution
from plugins.archive import load_plugin_source
from plugins.services import activate_version, install_version
from quotas.models import ApiKey
from tests.chromium import page_screenshot, requires_chromium
from tests.factories import EXAMPLES, install_source, make_execution

MINUTE = dt.timedelta(minutes=1)
RAISES = """
def fail(params, ctx):
    raise ValueError("the upstream answered 502")
"""
SLEEPS = """
import time

def nap(params, ctx):
    time.sleep(2)
"""
NAP = {"handler": "nap", "params": {"type": "object"}, "timeoutMs": 300}

pytestmark = [pytest.mark.slow, requires_chromium]


def points(html, series):
    return [float(v) for v in re.findall(rf'<circle data-series="{re.escape(series)}" data-value="([^"]+)"', html)]


def text_tools_version(version, description):
    """The text-tools example as a later version with another description and a longer timeout."""
    manifest, files = load_plugin_source(str(EXAMPLES / "text-tools"))
    manifest = {**manifest, "version": version, "description": description}
    manifest["actions"]["wordCount"] = {**manifest["actions"]["wordCount"], "timeoutMs": 2000}
    return install_version(manifest, files, activate=False, actor_id="cli")


def run(api, plugin, action, params=None, actor="user_ada"):
    body = {"pluginId": plugin, "actionName": action, "params": params or {}, "actorId": actor}
    return api.post("/execute", body, format="json")


def fill_history(org, versions):
    """Runs over the last day, varied by minute: a few a minute over the
    last hour, a few every quarter of an hour before."""
    text_tools, stats = versions
    now = timezone.now()
    for minute in range(2, 60):
        for n in range(2 + minute * 7 % 5):
            make_execution(org, text_tools if n % 2 else stats, queued_at=now - minute * MINUTE,
                           wait=dt.timedelta(seconds=75 if minute % 9 == 0 else 0.02),
                           run_ms=30 + minute * 37 % 250 + n * 40, cache_hit=n == 3, cache_key="k" if n in (1, 3) else "")
        for error_type, every, offset in (("PLUGIN_ERROR", 6, 0), ("TIMEOUT", 10, 3), ("NETWORK_ERROR", 15, 7)):
            if minute % every == offset:
                make_execution(org, stats, status="timeout" if error_type == "TIMEOUT" else "error",
                               error_type=error_type, queued_at=now - minute * MINUTE, wait=dt.timedelta(seconds=0.05),
                               run_ms=500 if error_type == "TIMEOUT" else 60)
    for quarter in range(5, 96):
        for n in range(1 + quarter % 4):
            make_execution(org, text_tools, queued_at=now - quarter * 15 * MINUTE, wait=dt.timedelta(seconds=0.02),
                           run_ms=40 + quarter * 13 % 300, status="error" if n == 3 else "success",
                           error_type="PLUGIN_ERROR" if n == 3 else "")


@pytest.fixture
def console(live, api, org, make_org, make_client, examples):
    """Runs through the real cluster by two organizations, and an admin session."""
    text_tools = examples["text-tools"]
    activate_version(text_tools_version("1.1.0", "Everyday text utilities; word counts may take up to 2 s."))
    text_tools_version("1.2.0", "Everyday text utilities (beta: faster slugs).")
    install_source("flaky-upstream", RAISES, {"fail": "fail"})
    install_source("sleepy", SLEEPS, {"nap": NAP})
    globex = make_client(make_org("globex", tier="enterprise"))

    for text in ("The quick brown fox.", "Jumps over the lazy dog. Twice!", "Hello"):
        assert run(api, "text-tools", "wordCount", {"text": text}).status_code == 200
    document = {"document": {"items": [{"name": "pen", "price": 2}]}, "path": "items[*].name"}
    for client in (api, api, globex, globex):
        assert run(client, "json-tools", "query", document, actor="svc_billing").status_code == 200
    assert run(globex, "stats", "describe", {"values": [2, 4, 4, 5, 7, 9]}, actor="svc_reports").status_code == 200
    assert run(api, "sleepy", "nap").status_code == 504
    # Failures from one organization open its own breaker for the plugin.
    refusals = [run(api, "flaky-upstream", "fail").status_code for _ in range(6)]
    assert refusals[:5] == [500] * 5 and refusals[5] == 503

    ApiKey.issue(org, name="ci-pipeline")
    ApiKey.issue(org, name="old-laptop")[0].revoke()
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("admin", password="x"))
    return admin, text_tools


def test_console_pages(console, org):
    admin, text_tools = console
    executions = Execution.objects.select_related("plugin_version__plugin")
    success = executions.filter(plugin_version__plugin__slug="text-tools", status="success").latest("queued_at")
    failure = executions.filter(plugin_version__plugin__slug="flaky-upstream", status="error").latest("queued_at")
    first = text_tools.plugin.versions.get(version="1.0.0")
    pages = {
        "executions-list": reverse("admin:executions_execution_changelist"),
        "execution-detail": reverse("admin:executions_execution_change", args=[success.pk]),
        "execution-detail-failed": reverse("admin:executions_execution_change", args=[failure.pk]),
        "execution-events": f"{reverse('admin:audit_auditevent_changelist')}?q={success.pk}",
        "plugin-versions": reverse("admin:plugins_plugin_change", args=[text_tools.plugin.pk]),
        "plugin-rollback-confirm": reverse("admin:plugins_plugin_activate_version",
                                           args=[text_tools.plugin.pk, first.pk]),
        "organization": reverse("admin:quotas_organization_change", args=[org.pk]),
        "api-keys": reverse("admin:quotas_apikey_changelist"),
        "tiers": reverse("admin:quotas_tier_changelist"),
        "circuit-breakers": reverse("admin:executions_circuitbreaker_changelist"),
    }
    for name, url in pages.items():
        response = admin.get(url)
        assert response.status_code == 200, name
        page_screenshot(response.content.decode(), name)

    events = admin.get(pages["execution-events"]).context["cl"].result_list
    assert [event.type for event in events] == ["plugin_action_executed"]
    failed = admin.get(pages["execution-detail-failed"]).content.decode()
    assert "the upstream answered 502" in failed and "Error traceback" in failed and "Error details" not in failed
    listing = admin.get(pages["executions-list"]).content.decode()
    assert ">hit</td>" in listing and ">timeout</span>" in listing and "user_ada" in listing
    plugin_page = admin.get(pages["plugin-versions"]).content.decode()
    assert "Roll back to 1.0.0</a>" in plugin_page and "Activate 1.2.0</a>" in plugin_page


def test_dashboard_pages(console, org, examples):
    admin, _ = console
    fill_history(org, (examples["text-tools"], examples["stats"]))
    for window in ("hour", "day"):
        response = admin.get(f"/admin/dashboard/?window={window}")
        assert response.status_code == 200
        html = response.content.decode()
        assert html.count('<figure class="chart">') == 7 and "cdn" not in html.lower()
        assert sum(points(html, "success")) > 0 and max(points(html, "p95")) > 0
        assert max(points(html, "PLUGIN_ERROR")) > 0 and max(points(html, "cache hits")) > 0
        assert "open for acme" in html
        shot = page_screenshot(html, f"dashboard-{window}")
        # A blank or unstyled page compresses to a few KiB; charts with data do not.
        assert shot.stat().st_size > 60_000
    hour = admin.get("/admin/dashboard/").content.decode()
    assert max(points(hour, "queued")) >= 1
