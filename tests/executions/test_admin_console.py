"""The Django admin as the operator's console: organization actions, the
execution pages, the link to the dashboard."""

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.events import record_event
from audit.models import AuditEvent
from executions.lifecycle import record_execution_event, record_lost_run
from executions.models import Execution, ExecutionAttempt
from quotas.enforcement import consume_daily, usage_today
from quotas.models import ApiKey, Organization
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


def test_the_executions_list_reads_at_a_glance(admin, org, examples):
    version = examples["text-tools"]
    finished = make_execution(org, version, wait=dt.timedelta(seconds=1), run_ms=1234, action="wordCount")
    Execution.objects.filter(pk=finished.pk).update(actor_id="person_7")
    make_execution(org, version, status="error", error_type="PLUGIN_ERROR", wait=dt.timedelta(0), run_ms=40)
    make_execution(org, version, wait=dt.timedelta(0), run_ms=0, cache_hit=True, cache_key="k")

    page = admin.get("/admin/executions/execution/").content.decode()
    table = page[page.index('<table id="result_list">'):]
    header = re.findall(r'<th scope="col"[^>]*>\s*<div class="text">(?:<a[^>]*>)?([^<]+)<', table)
    assert header == ["Id", "Organization", "Plugin", "Action", "Status", "Error type", "Cache", "Duration", "Actor",
                      "Finished at"]
    assert f'<span title="{finished.pk}">{str(finished.pk)[:8]}</span>' in page
    finished.refresh_from_db()
    assert f"{finished.finished_at:%Y-%m-%d %H:%M:%S} UTC" in page and "1.23 s" in page and "person_7" in page
    assert ">success</span>" in page and ">error</span>" in page and "background:#c62828" in page
    assert re.findall(r'<td class="field-cached">([^<]*)</td>', page).count("hit") == 1
    assert ">0 ms<" not in page  # a cache hit ran nothing
    assert "icon-no.svg" not in page and "icon-yes.svg" not in page  # no red cross for "not a cache hit"


def test_the_execution_detail(admin, org, examples):
    success = make_execution(org, examples["text-tools"], wait=dt.timedelta(seconds=2), run_ms=40, memory=12 * 2**20)
    detail = admin.get(f"/admin/executions/execution/{success.pk}/change/").content.decode()
    assert f"{success.queued_at:%Y-%m-%d %H:%M:%S} UTC" in detail
    assert f"{success.finished_at:%Y-%m-%d %H:%M:%S} UTC" in detail
    assert "12.0 MiB" in detail and "256 MiB" in detail and "40 ms" in detail
    assert "The run failed" not in detail and "Fallback" not in detail  # nothing was substituted
    assert "Error traceback" not in detail  # nor any error field on a success
    assert "icon-no.svg" not in detail and '<div class="readonly">no</div>' in detail  # cache hit, logs truncated
    assert f'href="/admin/audit/auditevent/?q={success.pk}"' in detail

    failed = make_execution(org, examples["text-tools"], status="error", error_type="TIMEOUT", wait=dt.timedelta(0),
                            run_ms=5)
    Execution.objects.filter(pk=failed.pk).update(fallback="stale_cache")
    detail = admin.get(f"/admin/executions/execution/{failed.pk}/change/").content.decode()
    assert "stale cached result" in detail and "The run failed and this answer was given instead." in detail
    assert "Error type" in detail and "Error traceback" not in detail  # none was recorded


def test_the_events_link_finds_the_events_of_one_execution(admin, org, examples):
    execution = make_execution(org, examples["text-tools"], wait=dt.timedelta(0), run_ms=5)
    other = make_execution(org, examples["text-tools"], wait=dt.timedelta(0), run_ms=5)
    for run in (execution, other):
        record_execution_event(run)
    record_lost_run(execution, "worker died", "requeued")
    record_event(AuditEvent.Type.QUOTA_RESET, organization=org, actor_id="admin:x", target_id=org.slug)
    found = admin.get("/admin/audit/auditevent/", {"q": str(execution.pk)}).context["cl"].result_list
    assert sorted(event.type for event in found) == ["execution_recovered", "plugin_action_executed"]


def test_an_organizations_slug_is_read_only_after_creation(admin, org):
    add = admin.get("/admin/quotas/organization/add/").content.decode()
    assert 'name="slug"' in add
    change_url = f"/admin/quotas/organization/{org.pk}/change/"
    change = admin.get(change_url).content.decode()
    assert 'name="slug"' not in change and '<div class="readonly">acme</div>' in change
    form = {"slug": "renamed", "name": "Acme", "tier": org.tier.pk, "owner_name": "", "owner_email": "",
            "daily_limit_override": "", "concurrent_limit_override": ""}
    assert admin.post(change_url, form).status_code == 302
    assert Organization.objects.get(pk=org.pk).slug == "acme"


def test_the_tier_select_cannot_delete_tiers(admin, org):
    change = admin.get(f"/admin/quotas/organization/{org.pk}/change/").content.decode()
    assert 'id="change_id_tier"' in change and 'id="add_id_tier"' in change
    assert 'id="delete_id_tier"' not in change
    assert change.count('placeholder="the tier&#x27;s"') == 2 and "s limit applies." in change


def test_tiers_say_a_blank_limit_is_unlimited(admin, tiers):
    page = admin.get("/admin/quotas/tier/").content.decode()
    assert "A blank daily limit means unlimited" in page
    # Enterprise's blank limit: an input without a value that says what blank means.
    assert re.search(r'<input type="number" name="form-\d+-daily_limit" class="vIntegerField" min="0" '
                     r'placeholder="unlimited"', page)


def test_api_keys_are_labelled_active_or_revoked(admin, org):
    kept, _ = ApiKey.issue(org, name="kept", is_staff=True)
    revoked, _ = ApiKey.issue(org, name="withdrawn")
    revoked.revoke()
    page = admin.get("/admin/quotas/apikey/").content.decode()
    labels = dict(re.findall(r'<td class="field-name">([^<]+)</td><td class="field-state"><span[^>]*>(\w+)</span>',
                             page))
    assert labels == {"kept": "Active", "withdrawn": "Revoked"}
    operators = dict(re.findall(r'<td class="field-name">([^<]+)</td>.*?<td class="field-operator">(.*?)</td>', page))
    assert ">staff</span>" in operators["kept"] and operators["withdrawn"] == "—" and "icon-no.svg" not in page
    assert ">Revoked</span>" in admin.get(f"/admin/quotas/apikey/{revoked.pk}/change/").content.decode()
