"""Finding 10 (staff): a staff admin session read every organization's
/events, /stats and dashboard whatever its permissions, and changing a
plugin's owner or enabled flag in the admin left no audit event."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from audit.events import record_event
from audit.models import AuditEvent
from plugins.models import Plugin
from tests.factories import install_source

pytestmark = pytest.mark.django_db


def staff_session(username, *permissions):
    user = get_user_model().objects.create_user(username, password="x", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = APIClient()
    client.force_login(user)
    return client


def test_staff_without_view_auditevent_cannot_read_every_organizations_events(org, make_org):
    record_event(AuditEvent.Type.QUOTA_RESET, organization=make_org("rival"), target_id="rival")
    refused = staff_session("support").get("/events")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "PERMISSION_DENIED"
    assert b"rival" not in refused.content
    allowed = staff_session("auditor", "audit.view_auditevent").get("/events")
    assert allowed.status_code == 200
    assert [event["organizationId"] for event in allowed.json()["results"]] == ["rival"]


def test_stats_and_the_dashboard_need_view_execution():
    support = staff_session("support")
    refused = support.get("/stats")
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "PERMISSION_DENIED"
    assert support.get(reverse("admin-dashboard")).status_code == 403
    assert b"admin/dashboard/" not in support.get(reverse("admin:index")).content
    operator = staff_session("operator", "executions.view_execution")
    assert operator.get("/stats").status_code == 200
    assert operator.get(reverse("admin-dashboard")).status_code == 200
    assert b"admin/dashboard/" in operator.get(reverse("admin:index")).content


def test_changing_a_plugins_owner_and_enabled_flag_in_the_admin_is_audited(org, make_org):
    plugin = install_source("payroll", "def go(params, ctx):\n    return 1\n", {"go": "go"}, owner=org).plugin
    rival = make_org("rival")
    editor = staff_session("editor", "plugins.view_plugin", "plugins.change_plugin")
    response = editor.post(reverse("admin:plugins_plugin_change", args=[plugin.pk]), {
        "name": plugin.name, "description": "moved", "owner": rival.pk,  # "enabled" unchecked
        "versions-TOTAL_FORMS": "1", "versions-INITIAL_FORMS": "1",
        "versions-MIN_NUM_FORMS": "0", "versions-MAX_NUM_FORMS": "1000",
        "versions-0-id": plugin.versions.get().pk, "versions-0-plugin": plugin.pk,
    })
    assert response.status_code == 302, response.content[:2000]
    plugin = Plugin.objects.get(pk=plugin.pk)
    assert (plugin.owner, plugin.enabled, plugin.description) == (rival, False, "moved")
    changes = AuditEvent.objects.filter(type=AuditEvent.Type.PLUGIN_STATE_CHANGED, target_id="payroll")
    moved = {"change": "owner", "owner": "rival", "previousOwner": org.slug}
    # Each organization concerned reads the move in its own log.
    assert sorted((event.organization.slug, event.metadata == moved) for event in changes.filter(
        metadata__change="owner")) == [(org.slug, True), ("rival", True)]
    disabled = changes.get(metadata__change="disabled")
    assert (disabled.organization, disabled.actor_id) == (rival, "admin:editor")
