"""The admin dashboard: figures from the execution records, the worker pool
replayed from the scaling events, charts drawn as inline SVG, the
per-plugin table. (Its screenshots: test_console_screenshots.py.)"""

import datetime as dt
import re
import time
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from audit.events import record_event
from audit.models import AuditEvent
from executions import breaker
from observability import charts, dashboard, stats
from tests.factories import make_execution, make_scaling_event

MINUTE = dt.timedelta(minutes=1)


def admin_client(staff=True):
    users = get_user_model().objects
    user = users.create_superuser("admin", password="x") if staff else users.create_user("visitor", password="x")
    client = Client()
    client.force_login(user)
    return client


def points(html, series):
    """The values drawn as dots of one series, in every chart of the page."""
    return [float(v) for v in re.findall(rf'<circle data-series="{re.escape(series)}" data-value="([^"]+)"', html)]


@pytest.mark.django_db
def test_dashboard_is_for_staff_only():
    assert Client().get("/admin/dashboard/")["Location"].startswith("/admin/login/")
    assert admin_client(staff=False).get("/admin/dashboard/")["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_dashboard_figures_over_the_last_hour(org, examples):
    version = examples["text-tools"]
    # Times a few seconds into whole minutes, so that runs meant for one bucket stay in it.
    now = timezone.now()
    if now.second > 50:
        time.sleep(61 - now.second)
        now = timezone.now()
    minute = now.replace(second=0, microsecond=0) + dt.timedelta(seconds=5)
    for run_ms in (100, 200, 300, 400):
        make_execution(org, version, queued_at=minute - 10 * MINUTE, wait=dt.timedelta(seconds=1), run_ms=run_ms,
                       cache_key="miss" if run_ms == 100 else "")
    make_execution(org, version, status="error", error_type="PLUGIN_ERROR", queued_at=minute - 10 * MINUTE,
                   wait=dt.timedelta(seconds=1), run_ms=50)
    make_execution(org, version, queued_at=minute - 20 * MINUTE, wait=dt.timedelta(0), cache_hit=True, cache_key="hit")
    make_execution(org, version, status="queued", queued_at=minute - 3 * MINUTE)
    make_execution(org, version, status="queued", queued_at=minute - 30 * MINUTE)
    make_execution(org, version, queued_at=now - dt.timedelta(days=2), wait=dt.timedelta(0), run_ms=9)

    context = dashboard.build("hour")
    assert context["summary"] | {"workers": None} == {
        "executions": 6, "errors": 1, "errorRate": 16.7, "p50": 200, "p95": 400, "cacheHitRate": 50.0,
        "queued": 2, "workers": None,
    }
    html = "".join(context["charts"])
    assert sum(points(html, "success")) == 5  # one bucket of 4 and one of 1, per minute
    assert points(html, "error") and max(points(html, "PLUGIN_ERROR")) == 20.0  # 1 of the 5 in that minute
    assert max(points(html, "p95")) == 400 and sorted(points(html, "cache hits")) == [0.0, 100.0]
    queue = points(html, "queued")
    assert len(queue) == 60 and queue[-1] == 2 and queue[0] == 0 and max(queue) == 2
    assert len(dashboard.build("day")["charts"]) == 7


def plugin_table(html):
    """The per-plugin table's rows as lists of cell texts."""
    table = html[html.index('<table id="plugin-figures">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>(.*?)</tr>", table, re.S)
    return [[re.sub(r"<[^>]+>", " ", cell).split() for cell in re.split(r"</td>\s*<td[^>]*>", row)] for row in rows]


@pytest.mark.django_db
def test_the_plugin_table_is_computed_from_the_runs_and_the_breakers(org, make_org, examples, settings):
    text_tools, stats_plugin, json_tools = examples["text-tools"], examples["stats"], examples["json-tools"]
    now = timezone.now()
    for run_ms in range(10, 210, 10):  # 20 runs: 10 ms … 200 ms
        make_execution(org, text_tools, queued_at=now - 5 * MINUTE, wait=dt.timedelta(0), run_ms=run_ms,
                       cache_key="k" if run_ms <= 80 else "")
    for _ in range(2):
        make_execution(org, text_tools, queued_at=now - 5 * MINUTE, wait=dt.timedelta(0), cache_hit=True,
                       cache_key="k")
    make_execution(org, text_tools, status="error", error_type="PLUGIN_ERROR", queued_at=now - 5 * MINUTE,
                   wait=dt.timedelta(0), run_ms=3000)
    make_execution(org, text_tools, queued_at=now - 2 * dt.timedelta(hours=2), wait=dt.timedelta(0), run_ms=9999)
    make_execution(org, stats_plugin, status="timeout", error_type="TIMEOUT", queued_at=now - MINUTE,
                   wait=dt.timedelta(0), run_ms=500)
    # json-tools ran nowhere in the window, but its breaker is open for one organization.
    settings.BREAKER_FAILURE_THRESHOLD = 2
    globex = make_org("globex")
    for _ in range(2):
        breaker.record_outcome(json_tools.plugin, globex, False)

    rows = plugin_table(admin_client().get("/admin/dashboard/").content.decode())
    assert rows == [
        # 23 runs; 1 error; p95 of the 21 that ran (10…200 and 3000): 200; hits 2 of 10 cacheable.
        [["text-tools"], ["23"], ["4.3", "%"], ["200", "ms"], ["20.0", "%"], ["closed"]],
        [["stats"], ["1"], ["100.0", "%"], ["500", "ms"], ["–"], ["closed"]],
        [["json-tools"], ["0"], ["–"], ["–"], ["–"], ["open", "for", "globex"]],
    ]


@pytest.mark.django_db
def test_the_dashboard_can_reload_itself():
    client = admin_client()
    assert 'http-equiv="refresh"' not in client.get("/admin/dashboard/").content.decode()
    page = client.get("/admin/dashboard/?window=day&refresh=60").content.decode()
    assert '<meta http-equiv="refresh" content="60">' in page
    assert 'href="?window=hour&amp;refresh=60"' in page  # switching window keeps it
    assert 'http-equiv="refresh"' not in client.get("/admin/dashboard/?refresh=1").content.decode()


def test_series_of_one_chart_differ_in_dash_and_width_and_lone_points_are_strokes():
    times = [dt.datetime(2026, 1, 1, 12, minute, tzinfo=dt.timezone.utc) for minute in range(5)]
    chart = charts.line_chart("Rates", times, [
        charts.Series("a", [0, 0, 0, 0, 0], "#111111"),
        charts.Series("b", [0, 0, 0, 0, 0], "#222222"),
        charts.Series("sparse", [50, None, 100, None, None], "#333333"),
    ], "%")
    styles = re.findall(r'<polyline data-series="(\w+)" points="[^"]+" fill="none" stroke="#\d+" '
                        r'stroke-width="([^"]+)" stroke-dasharray="([^"]*)"', chart)
    # Each drawn thinner over the one before, with a dash of its own.
    assert styles == [("a", "4.8", ""), ("b", "3.3", "7 4"), ("sparse", "1.8", "2 3"), ("sparse", "1.8", "2 3")]
    # The lone points are level strokes one bucket wide (the one at the edge clipped), not dots.
    strokes = re.findall(r'<polyline data-series="sparse" points="([^"]+)"', chart)
    assert strokes == ["-10.0,121.0 114.0,121.0", "238.0,38.0 362.0,38.0"]
    assert 'r="2.2"' not in chart and points(chart, "sparse") == [50, 100]


@pytest.mark.django_db
def test_the_error_chart_groups_rare_types_as_other(org, examples):
    version, now = examples["text-tools"], timezone.now()
    types = ["T%d" % n for n in range(dashboard.MAX_ERROR_SERIES + 2)]
    for n, error_type in enumerate(types):
        for _ in range(len(types) - n):
            make_execution(org, version, status="error", error_type=error_type, queued_at=now - 5 * MINUTE,
                           wait=dt.timedelta(0), run_ms=1)
    html = "".join(dashboard.build("hour")["charts"])
    assert points(html, "T0") and not points(html, types[-1]) and points(html, "other")


@pytest.fixture
def pools(settings, monkeypatch):
    """Bounds of each priority's pool; live heartbeats: a high cluster of 3
    workers and a low one of 4, none for medium."""
    settings.PRIORITY_MIN_WORKERS = {"high": 2, "medium": 1, "low": 1}
    settings.PRIORITY_WORKERS = {"high": 8, "medium": 5, "low": 6}
    monkeypatch.setattr(stats, "live_clusters", lambda: [
        SimpleNamespace(priority="high", workers=[1, 2, 3], busy=1),
        SimpleNamespace(priority="low", workers=[4, 5, 6, 7], busy=0),
    ])


def hour_window(now):
    """The start of the hour window dashboard.build draws at `now` (half a minute past a whole minute)."""
    return now.replace(second=0) + MINUTE - 60 * MINUTE


@pytest.mark.django_db
def test_the_pool_size_chart_replays_the_scaling_events(pools):
    now = timezone.now().replace(second=30, microsecond=0)
    start = hour_window(now)
    # high: decisions in the window; the one before it is superseded by their `from`.
    make_scaling_event("high", 2, 5, "before the window", start - 10 * MINUTE)
    make_scaling_event("high", 4, 6, "12 runs queued", start + 5 * MINUTE + dt.timedelta(seconds=10))
    make_scaling_event("high", 6, 8, "8 of 6 workers busy with runs waiting", start + 20 * MINUTE + dt.timedelta(seconds=10))
    make_scaling_event("high", 8, 7, "a worker idle for 300 s", start + 40 * MINUTE + dt.timedelta(seconds=10))
    # medium: one decision right at a bucket's end counts in that bucket; before it, its `from`.
    make_scaling_event("medium", 2, 3, "the oldest run has waited 1.2 s", start + 30 * MINUTE)
    # low: none in the window: the latest one before it, not the heartbeat's 4 or an older decision.
    make_scaling_event("low", 1, 5, "older", start - 3 * 60 * MINUTE)
    make_scaling_event("low", 1, 2, "latest before the window", start - 2 * 60 * MINUTE)
    # Another type of event about a priority is not a scaling decision.
    restart = record_event(AuditEvent.Type.PROCESS_RESTARTED, actor_id="supervisord", target_id="low",
                           metadata={"from": 0, "to": 9})
    AuditEvent.objects.filter(pk=restart.pk).update(timestamp=start + 30 * MINUTE)

    context = dashboard.build("hour", now=now)
    [chart] = [chart for chart in context["charts"] if "Worker pool size by priority" in chart]
    assert points(chart, "high") == [4] * 5 + [6] * 15 + [8] * 20 + [7] * 20
    assert points(chart, "medium") == [2] * 29 + [3] * 31
    assert points(chart, "low") == [2] * 60
    assert '<circle data-series="high" data-value="7"' in chart and "7 workers</title>" in chart
    assert [(d["priority"], d["from"], d["to"]) for d in context["scaling"]][:4] == [
        ("high", 8, 7), ("medium", 2, 3), ("high", 6, 8), ("high", 4, 6)]


@pytest.mark.django_db
def test_without_scaling_events_the_pool_is_the_live_size_else_the_minimum(pools):
    context = dashboard.build("day")
    chart = context["charts"][-1]
    assert points(chart, "high") == [3] * 96 and points(chart, "low") == [4] * 96
    assert points(chart, "medium") == [1] * 96  # no live cluster: its configured minimum
    assert context["pools"]["high"] == {"clusters": 1, "size": 3, "busy": 1, "minimum": 2, "maximum": 8}


@pytest.mark.django_db
def test_the_dashboard_page_shows_the_pool_chart_and_the_latest_decisions(pools):
    now = timezone.now()
    for n in range(12):
        make_scaling_event("medium", n, n + 1, f"{n + 50} runs queued", now - (12 - n) * MINUTE)
    html = admin_client().get("/admin/dashboard/").content.decode()
    assert "<figcaption>Worker pool size by priority</figcaption>" in html
    assert max(points(html, "medium")) == 12 and points(html, "high") == [3] * 60
    table = html[html.index('<table id="scaling-decisions">'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\w+)</td>\s*<td>(\d+) → (\d+)</td><td>([^<]+)</td></tr>", table)
    assert len(rows) == dashboard.RECENT_SCALING_ROWS == 10
    newest = now - MINUTE
    assert rows[0] == (f"{newest:%Y-%m-%d %H:%M:%S}", "medium", "11", "12", "61 runs queued")
    assert [int(row[3]) for row in rows] == list(range(12, 2, -1))
    assert "high 3 (2–8) · medium 0 (1–5) · low 4 (1–6)" in html


@pytest.mark.django_db
def test_the_dashboard_page_without_any_scaling_decision(pools):
    html = admin_client().get("/admin/dashboard/?window=day").content.decode()
    assert "No scaling decision recorded yet." in html and html.count('<figure class="chart">') == 7
