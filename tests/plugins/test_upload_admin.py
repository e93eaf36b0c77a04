"""Uploading, activating and enabling plugins through the admin."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from plugins.models import PluginVersion
from tests.plugins.helpers import (
    BAD_ARCHIVES,
    SOURCE,
    assert_nothing_stored,
    manifest,
    plugin_zip,
)


@pytest.mark.django_db
def test_admin_upload_form_stores_a_version(admin_client, org):
    add_url = reverse("admin:plugins_plugin_add")
    page = admin_client.get(add_url)
    assert page.status_code == 200 and 'name="archive"' in page.content.decode()

    archive = SimpleUploadedFile("echo.zip", plugin_zip())
    response = admin_client.post(add_url, {"archive": archive, "owner": org.pk, "activate": "on"})
    version = PluginVersion.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:plugins_plugin_change", args=[version.plugin.pk])
    assert version.plugin.owner == org and version.is_active
    assert AuditEvent.objects.get(type="plugin_version_uploaded").actor_id == "admin:admin"

    # A single module with its manifest, as a new version of the same plugin.
    module = SimpleUploadedFile("echo.py", SOURCE.encode())
    plugin_json = SimpleUploadedFile("plugin.json", json.dumps(manifest(version="1.1.0")).encode())
    admin_client.post(add_url, {"source": module, "manifest": plugin_json, "owner": org.pk})
    assert PluginVersion.objects.get(version="1.1.0").is_active is False

    change = admin_client.get(reverse("admin:plugins_plugin_change", args=[version.plugin.pk])).content.decode()
    assert version.sha256 in change


@pytest.mark.django_db
def test_admin_upload_form_shows_the_problems_and_stores_nothing(admin_client):
    archive = SimpleUploadedFile("evil.zip", BAD_ARCHIVES["zip slip"][0])
    response = admin_client.post(reverse("admin:plugins_plugin_add"), {"archive": archive})
    assert response.status_code == 200
    assert "The plugin was not stored" in response.content.decode()
    assert "archive: &#x27;../../evil.py&#x27;" in response.content.decode()
    assert_nothing_stored()


@pytest.mark.django_db
def test_admin_activation_and_enabling_are_audited(admin_client):
    add_url = reverse("admin:plugins_plugin_add")
    assert admin_client.post(add_url, {"archive": SimpleUploadedFile("a.zip", plugin_zip())}).status_code == 302
    newer = SimpleUploadedFile("b.zip", plugin_zip(version="2.0.0"))
    assert admin_client.post(add_url, {"archive": newer, "activate": "on"}).status_code == 302
    old = PluginVersion.objects.get(version="1.0.0")
    versions, plugins = reverse("admin:plugins_pluginversion_changelist"), reverse("admin:plugins_plugin_changelist")
    admin_client.post(versions, {"action": "activate", "_selected_action": [old.pk]})
    admin_client.post(plugins, {"action": "disable", "_selected_action": [old.plugin.pk]})
    changes = AuditEvent.objects.filter(type="plugin_state_changed").order_by("timestamp", "pk")
    assert [(event.metadata["change"], event.actor_id) for event in changes] == [
        ("activated", "admin:admin"),
        ("disabled", "admin:admin"),
    ]
