"""The Django admin as the operator's console: organization actions, the
execution pages, the link to the dashboard."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.models import AuditEvent
from executions.models import ExecutionAttempt
from quotas.enforcement import consume_daily, usage_today
from quotas.models import Organization
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("admin", password="x"))
    return client


def run_action(admin, action, *organizations):
    return admin.post(
        "/admin/quotas/organization/",
        {"action": action, "_selected_action": [o.pk for o in organizations]},
        follow=True,
    )


def test_reset_todays_quota(admin, org, make_org):
    other = make_org("globex")
    for _ in range(3):
        consume_daily(org)
    response = run_action(admin, "reset_daily_quota", org, other)
    assert "Reset today&#x27;s usage of 2 organization(s); 1 had used some." in response.content.decode()
    assert usage_today(org).used == 0
    assert AuditEvent.objects.filter(type="quota_reset", organization=org, actor_id="admin:admin").exists()


def test_move_to_tier(admin, org, make_org):
    other = make_org("globex", tier="free")
    assert "move_to_tier_enterprise" in admin.get("/admin/quotas/organization/").content.decode()
    response = run_action(admin, "move_to_tier_enterprise", org, other)
    assert "Moved 2 organization(s) to tier enterprise." in response.content.decode()
    assert set(Organization.objects.values_list("tier__name", flat=True)) == {"enterprise"}


def test_execution_pages(admin, org, examples):
    text_tools, stats = examples["text-tools"], examples["stats"]
    execution = make_execution(org, text_tools, wait=dt.timedelta(seconds=2), run_ms=40)
    ExecutionAttempt.objects.create(execution=execution, number=1, status="error", error_type="TIMEOUT",
                                    started_at=execution.started_at, finished_at=execution.finished_at)
    make_execution(org, stats, wait=dt.timedelta(seconds=1), run_ms=5, action="describe")

    plugin_filter = admin.get(f"/admin/executions/execution/?plugin_version__plugin__id__exact={text_tools.plugin.pk}")
    assert plugin_filter.status_code == 200
    assert plugin_filter.context["cl"].result_count == 1
    by_id = admin.get("/admin/executions/execution/", {"q": str(execution.pk)})
    assert by_id.context["cl"].result_count == 1

    detail = admin.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
    assert "2.000 s" in detail  # the queue wait
    assert "TIMEOUT" in detail  # the attempt


def test_admin_home_links_the_dashboard(admin):
    assert 'href="/admin/dashboard/"' in admin.get("/admin/").content.decode()
