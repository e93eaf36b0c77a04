"""The admin pages of every model (they render, read-only models stay read
only, JSON shown but never the archive) and the actions on API keys and
plugins. (Organization actions and the execution pages, as the operator's
console: tests/executions/test_admin_console.py.)"""

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditEvent
from executions.models import Execution
from plugins.models import Plugin, PluginVersion
from quotas.authentication import authenticate_key
from quotas.enforcement import utc_today
from quotas.models import ApiKey, DailyUsage
from tests.factories import KEY_PATTERN
from plugins.services import install_version
from tests.plugins.helpers import SOURCE, active_versions, install, manifest


@pytest.fixture
def admin_data(examples, org):
    version = examples["json-tools"]  # a Python plugin: its entrypoint is plugin.py
    api_key, _ = ApiKey.issue(org, name="admin-test")
    usage = DailyUsage.objects.create(organization=org, day=utc_today(), count=7)
    execution = Execution.objects.create(
        organization=org,
        actor_id="person_1",
        plugin_version=version,
        action=next(iter(version.manifest["actions"])),
        params={"document": {"a": 1}},
        timeout_ms=1000,
        memory_limit_mb=128,
        status=Execution.Status.SUCCESS,
        result={"answer": 42},
        logs=["started", "done"],
    )
    event = AuditEvent.objects.create(
        type="plugin_action_executed", organization=org, target_id="x", metadata={"k": 1}
    )
    return {
        "quotas.tier": org.tier,
        "quotas.organization": org,
        "quotas.apikey": api_key,
        "quotas.dailyusage": usage,
        "plugins.plugin": version.plugin,
        "plugins.pluginversion": version,
        "executions.execution": execution,
        "audit.auditevent": event,
    }


MODELS = [
    "quotas.tier", "quotas.organization", "quotas.apikey", "quotas.dailyusage",
    "plugins.plugin", "plugins.pluginversion", "executions.execution", "audit.auditevent",
]


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS)
def test_admin_pages_render(admin_client, admin_data, model):
    app_label, model_name = model.split(".")
    changelist = admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))
    assert changelist.status_code == 200
    change = admin_client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[admin_data[model].pk]))
    assert change.status_code == 200


@pytest.mark.django_db
def test_admin_detail_pages_show_json_but_never_the_archive(admin_client, admin_data):
    version = admin_data["plugins.pluginversion"]
    page = admin_client.get(reverse("admin:plugins_pluginversion_change", args=[version.pk])).content.decode()
    assert "&quot;entrypoint&quot;: &quot;plugin.py&quot;" in page
    assert "plugin.py (" in page  # the file list
    assert 'name="archive"' not in page
    vendoring = PluginVersion.objects.get(plugin__slug="table-report")  # its wheel is listed too
    page = admin_client.get(reverse("admin:plugins_pluginversion_change", args=[vendoring.pk])).content.decode()
    assert "vendor/tabulate-0.9.0-py3-none-any.whl (35252 bytes)" in page and "requirements.lock (" in page

    execution = admin_data["executions.execution"]
    page = admin_client.get(reverse("admin:executions_execution_change", args=[execution.pk])).content.decode()
    assert "&quot;answer&quot;: 42" in page and "&quot;done&quot;" in page

    organizations = admin_client.get(reverse("admin:quotas_organization_changelist")).content.decode()
    assert "7 / 10000" in organizations


@pytest.mark.django_db
def test_admin_finds_an_execution_by_id(admin_client, admin_data):
    execution = admin_data["executions.execution"]
    url = reverse("admin:executions_execution_changelist")
    for term in (str(execution.pk), execution.pk.hex, "person_1"):
        assert str(execution.pk) in admin_client.get(url, {"q": term}).content.decode()
    assert str(execution.pk) not in admin_client.get(url, {"q": "someone-else"}).content.decode()


@pytest.mark.django_db
def test_read_only_models_cannot_be_added_or_edited(admin_client, admin_data):
    for model in ("executions.execution", "audit.auditevent", "quotas.dailyusage", "plugins.pluginversion"):
        app_label, model_name = model.split(".")
        assert admin_client.get(reverse(f"admin:{app_label}_{model_name}_add")).status_code == 403
        url = reverse(f"admin:{app_label}_{model_name}_change", args=[admin_data[model].pk])
        assert admin_client.post(url, {}).status_code == 403


@pytest.mark.django_db
def test_admin_api_key_add_shows_the_key_once(admin_client, org):
    add_url = reverse("admin:quotas_apikey_add")
    assert admin_client.get(add_url).status_code == 200
    response = admin_client.post(add_url, {"organization": org.pk, "name": "dashboard"}, follow=True)
    assert response.status_code == 200
    shown = KEY_PATTERN.findall(response.content.decode())
    assert len(shown) == 1
    key = shown[0]
    record = ApiKey.objects.get(name="dashboard")
    assert authenticate_key(key).api_key == record
    assert key.split("_", 2)[2] not in record.hashed_secret

    again = admin_client.get(reverse("admin:quotas_apikey_change", args=[record.pk])).content.decode()
    assert key not in again and record.prefix in again


@pytest.mark.django_db
def test_admin_revoke_action(admin_client, org):
    keep, _ = ApiKey.issue(org, name="keep")
    revoke, _ = ApiKey.issue(org, name="revoke")
    admin_client.post(
        reverse("admin:quotas_apikey_changelist"), {"action": "revoke", "_selected_action": [revoke.pk]}
    )
    assert ApiKey.objects.get(pk=revoke.pk).is_revoked
    assert not ApiKey.objects.get(pk=keep.pk).is_revoked


@pytest.mark.django_db
def test_admin_plugin_actions(admin_client):
    first = install(version="1.0.0")
    install(version="1.1.0")
    changelist = reverse("admin:plugins_plugin_changelist")
    admin_client.post(changelist, {"action": "disable", "_selected_action": [first.plugin.pk]})
    assert Plugin.objects.get().enabled is False
    admin_client.post(changelist, {"action": "enable", "_selected_action": [first.plugin.pk]})
    assert Plugin.objects.get().enabled is True

    versions = reverse("admin:plugins_pluginversion_changelist")
    admin_client.post(versions, {"action": "activate", "_selected_action": [first.pk]})
    assert active_versions("echo") == ["1.0.0"]
    both = list(PluginVersion.objects.values_list("pk", flat=True))
    response = admin_client.post(versions, {"action": "activate", "_selected_action": both}, follow=True)
    assert "Select one version of echo" in response.content.decode()
    assert active_versions("echo") == ["1.0.0"]


def diff_rows(page):
    """The manifest diff table's rows as (field, before, after) texts."""
    table = page[page.index('<table class="manifest-diff">'):]
    table = table[:table.index("</table>")]
    return [tuple(re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row))
            for row in re.findall(r"<tr><td>(?:.*?)</tr>", table)]


@pytest.mark.django_db
def test_version_buttons_roll_back_and_activate_after_a_confirmation(admin_client):
    first = install(version="1.0.0")
    longer = manifest(version="1.1.0", description="echo, with a longer description")
    second = install_version(longer, {"plugin.json": json.dumps(longer), "plugin.py": SOURCE})
    plugin_page = reverse("admin:plugins_plugin_change", args=[first.plugin.pk])
    roll_back = reverse("admin:plugins_plugin_activate_version", args=[first.plugin.pk, first.pk])
    page = admin_client.get(plugin_page).content.decode()
    assert f'<a class="button" href="{roll_back}">Roll back to 1.0.0</a>' in page
    assert "1.1.0</a>" not in page  # the active version has no button

    confirmation = admin_client.get(roll_back).content.decode()
    assert "Roll back echo to 1.0.0?" in confirmation and 'value="Yes, roll back to 1.0.0"' in confirmation
    assert diff_rows(confirmation) == [
        ("description", "echo, with a longer description", "echo plugin"),
        ("version", "1.1.0", "1.0.0"),
    ]
    assert active_versions("echo") == ["1.1.0"]  # looking changes nothing

    response = admin_client.post(roll_back, follow=True)
    assert response.redirect_chain[-1][0] == plugin_page
    assert "Rolled back echo to 1.0.0." in response.content.decode()
    assert active_versions("echo") == ["1.0.0"]
    event = AuditEvent.objects.filter(type="plugin_state_changed").latest("pk")
    assert event.actor_id == "admin:admin" and event.target_id == "echo"
    assert event.metadata == {"change": "activated", "version": "1.0.0", "previousVersion": "1.1.0"}

    activate = reverse("admin:plugins_plugin_activate_version", args=[first.plugin.pk, second.pk])
    assert f'<a class="button" href="{activate}">Activate 1.1.0</a>' in response.content.decode()
    assert "Activate echo 1.1.0?" in admin_client.get(activate).content.decode()
    response = admin_client.post(activate, follow=True)
    assert "Activated echo 1.1.0." in response.content.decode()
    assert active_versions("echo") == ["1.1.0"]


@pytest.mark.django_db
def test_only_users_allowed_to_change_versions_see_and_use_the_buttons(client, django_user_model):
    first = install(version="1.0.0")
    install(version="1.1.0")
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_plugin", "view_pluginversion"]))
    client.force_login(viewer)
    page = client.get(reverse("admin:plugins_plugin_change", args=[first.plugin.pk])).content.decode()
    assert "Roll back" not in page
    roll_back = reverse("admin:plugins_plugin_activate_version", args=[first.plugin.pk, first.pk])
    assert client.get(roll_back).status_code == 403
    assert client.post(roll_back).status_code == 403
    assert active_versions("echo") == ["1.1.0"]


@pytest.mark.django_db
def test_a_version_page_shows_its_manifest_changes_since_the_previous_upload(admin_client):
    first = install(version="1.0.0")
    changed = manifest(version="2.0.0", actions={
        "echo": {"handler": "echo", "description": "Echo the params", "params": {"type": "object"}, "timeoutMs": 900},
        "shout": {"handler": "echo", "params": {"type": "object", "required": ["text"]}},
    })
    second = install_version(changed, {"plugin.json": json.dumps(changed), "plugin.py": SOURCE})
    first_page = admin_client.get(reverse("admin:plugins_pluginversion_change", args=[first.pk])).content.decode()
    assert "No earlier version to compare with." in first_page
    page = admin_client.get(reverse("admin:plugins_pluginversion_change", args=[second.pk])).content.decode()
    assert "<th>1.0.0</th><th>2.0.0</th>" in page
    rows = dict((path, (before, after)) for path, before, after in diff_rows(page))
    assert rows["version"] == ("1.0.0", "2.0.0") and rows["actions.echo.timeoutMs"] == ("absent", "900")
    assert rows["actions.shout.params.required"] == ("absent", '[&quot;text&quot;]')
    assert "actions.echo.handler" not in rows  # unchanged fields are left out
