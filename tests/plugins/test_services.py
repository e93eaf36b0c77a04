"""Installing plugin versions through the service layer: storage, audit,
immutability, activation, ownership, enabling."""

import json

import pytest

from audit.models import AuditEvent
from plugins.archive import files_from_zip, sha256_hex
from plugins.manifest import ManifestError
from plugins.models import Plugin, PluginVersion
from plugins.services import (
    activate_version,
    install_version,
    plugin_files,
    set_plugin_enabled,
)
from tests.plugins.helpers import SOURCE, active_versions, install, manifest


@pytest.mark.django_db
def test_install_version_stores_archive_manifest_and_event():
    version = install(actor_id="person_1")
    assert version.plugin.slug == "echo" and version.plugin.name == "echo" and version.plugin.owner is None
    assert version.is_active
    archive = bytes(version.archive)
    assert version.sha256 == sha256_hex(archive)
    stored_files = files_from_zip(archive)
    assert stored_files["plugin.py"] == SOURCE
    # The stored manifest has its defaults, and the archive's plugin.json is that manifest.
    assert version.manifest["actions"]["echo"]["cacheable"] is False
    assert json.loads(stored_files["plugin.json"]) == version.manifest
    event = AuditEvent.objects.get(type="plugin_version_uploaded")
    assert (event.actor_id, event.target_id, event.organization) == ("person_1", "echo", None)
    assert event.metadata == {"version": "1.0.0", "sha256": version.sha256, "activated": True}


@pytest.mark.django_db
def test_invalid_plugin_is_not_stored():
    broken = manifest()
    broken["actions"]["echo"]["handler"] = "missing"
    with pytest.raises(ManifestError) as caught:
        install_version(broken, {"plugin.json": "{}", "plugin.py": SOURCE})
    assert caught.value.errors[0]["field"] == "actions.echo.handler"
    assert not Plugin.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_versions_are_immutable():
    install()
    with pytest.raises(ManifestError) as caught:
        install()
    assert caught.value.errors[0]["field"] == "version"
    assert "immutable" in str(caught.value)
    assert PluginVersion.objects.count() == 1


@pytest.mark.django_db
def test_activation_swaps_the_active_version():
    first = install(version="1.0.0")
    install(version="1.1.0")
    assert active_versions("echo") == ["1.1.0"]
    install(version="1.2.0", activate=False)
    assert active_versions("echo") == ["1.1.0"]
    activate_version(first)
    assert active_versions("echo") == ["1.0.0"]
    activate_version(first)
    assert active_versions("echo") == ["1.0.0"]
    uploaded = AuditEvent.objects.filter(type="plugin_version_uploaded").order_by("timestamp", "pk")
    assert [event.metadata["activated"] for event in uploaded] == [True, True, False]


@pytest.mark.django_db
def test_owners_cannot_overwrite_each_others_plugins(make_org):
    acme, globex = make_org("acme"), make_org("globex")
    install("private", owner=acme)
    install("private", version="1.1.0", owner=acme)
    install("public")

    for name, owner in (("private", globex), ("private", None), ("public", acme)):
        with pytest.raises(ManifestError) as caught:
            install(name, version="2.0.0", owner=owner)
        assert caught.value.errors[0]["field"] == "name"
    assert PluginVersion.objects.filter(version="2.0.0").count() == 0
    assert AuditEvent.objects.filter(organization=acme).count() == 2


@pytest.mark.django_db
def test_plugin_files_reads_the_archive_once(django_assert_num_queries):
    version = install()
    expected = files_from_zip(bytes(version.archive))
    assert plugin_files(version) == expected
    deferred = PluginVersion.objects.defer("archive").get(pk=version.pk)
    with django_assert_num_queries(0):
        files = plugin_files(deferred)
    assert files == expected
    files["plugin.py"] = "changed"
    assert plugin_files(deferred) == expected


@pytest.mark.django_db
def test_set_plugin_enabled():
    plugin = install().plugin
    set_plugin_enabled(plugin, False)
    assert Plugin.objects.get(pk=plugin.pk).enabled is False
    set_plugin_enabled(plugin, True)
    assert Plugin.objects.get(pk=plugin.pk).enabled is True
