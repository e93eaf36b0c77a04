"""The commands that install plugins: `install_plugin` (a folder, a zip or a
single module) and `seed_demo` (the examples, a demo organization and key)."""

import json
import shutil
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError

from audit.models import AuditEvent
from plugins.models import Plugin, PluginVersion
from plugins.services import plugin_files
from quotas.authentication import authenticate_key
from quotas.models import ApiKey, Organization
from tests.factories import EXAMPLE_NAMES, EXAMPLES, run_command
from tests.plugins.helpers import SOURCE, active_versions, manifest

# --- install_plugin ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_install_plugin_from_each_example_folder(name):
    lines = run_command("install_plugin", str(EXAMPLES / name), "--activate")
    plugin_manifest = json.loads((EXAMPLES / name / "plugin.json").read_text())
    assert lines[-1] == f"{name} {plugin_manifest['version']}"
    version = PluginVersion.objects.get(plugin__slug=name)
    assert version.is_active
    # The text files go to every run; vendored wheels reach it unpacked;
    # bytecode left by tests that import an example is not the plugin's.
    folder = EXAMPLES / name
    texts = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*")
        if p.is_file() and p.suffix != ".whl" and "__pycache__" not in p.parts
    )
    assert sorted(plugin_files(version)) == texts


@pytest.mark.django_db
def test_install_plugin_from_a_zip_without_activating(tmp_path):
    archive_path = tmp_path / "stats.zip"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in (EXAMPLES / "stats").iterdir():
            if path.is_file():
                archive.write(path, path.name)
    lines = run_command("install_plugin", str(archive_path))
    assert lines[-1] == "stats 1.0.0"
    assert "inactive" in lines[0]
    assert active_versions("stats") == []


@pytest.mark.django_db
def test_install_plugin_from_a_single_module(tmp_path):
    (tmp_path / "echo_plugin.py").write_text(SOURCE)
    (tmp_path / "echo.json").write_text(json.dumps(manifest()))
    module, manifest_path = str(tmp_path / "echo_plugin.py"), str(tmp_path / "echo.json")
    lines = run_command("install_plugin", module, "--manifest", manifest_path, "--activate")
    assert lines[-1] == "echo 1.0.0"
    assert plugin_files(PluginVersion.objects.get())["plugin.py"] == SOURCE

    (tmp_path / "plugin.json").write_text(json.dumps(manifest(version="1.1.0")))
    assert run_command("install_plugin", str(tmp_path / "echo_plugin.py"))[-1] == "echo 1.1.0"


@pytest.mark.django_db
def test_install_plugin_with_an_owner(org):
    install_folder = EXAMPLES / EXAMPLE_NAMES[0]
    run_command("install_plugin", str(install_folder), "--owner", org.slug)
    assert Plugin.objects.get().owner == org
    assert AuditEvent.objects.get().organization == org
    with pytest.raises(CommandError, match="no organization 'nobody'"):
        run_command("install_plugin", str(install_folder), "--owner", "nobody")


@pytest.mark.django_db
def test_install_plugin_lists_the_field_errors(tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(EXAMPLES / "stats", folder, ignore=shutil.ignore_patterns("__pycache__"))
    broken = json.loads((folder / "plugin.json").read_text())
    broken["actions"]["describe"]["handler"] = "summarise"
    broken["limits"]["memoryMb"] = 1
    (folder / "plugin.json").write_text(json.dumps(broken))
    with pytest.raises(CommandError) as caught:
        run_command("install_plugin", str(folder))
    message = str(caught.value)
    assert "limits.memoryMb: 1 is less than the minimum of 16" in message
    assert not Plugin.objects.exists()


@pytest.mark.django_db
def test_install_plugin_refuses_an_existing_version():
    run_command("install_plugin", str(EXAMPLES / "stats"))
    with pytest.raises(CommandError, match="versions are immutable"):
        run_command("install_plugin", str(EXAMPLES / "stats"))


@pytest.mark.django_db
def test_install_plugin_refuses_an_unsafe_archive(tmp_path):
    archive_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("plugin.json", json.dumps(manifest()))
        archive.writestr("../plugin.py", SOURCE)
    with pytest.raises(CommandError, match=r"archive: '\.\./plugin\.py'"):
        run_command("install_plugin", str(archive_path))


# --- seed_demo --------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    first = run_command("seed_demo")
    second = run_command("seed_demo")

    demo = Organization.objects.get(slug="demo")
    assert (demo.name, demo.tier.name) == ("Demo Org", "pro")
    assert Organization.objects.count() == 1
    assert sorted(Plugin.objects.values_list("slug", flat=True)) == EXAMPLE_NAMES
    assert PluginVersion.objects.count() == len(EXAMPLE_NAMES)
    assert all(version.is_active for version in PluginVersion.objects.all())
    assert Plugin.objects.filter(owner__isnull=True).count() == len(EXAMPLE_NAMES)

    # Each run issues a fresh key (keys cannot be shown twice); both work.
    keys = [first[-1], second[-1]]
    assert keys[0] != keys[1]
    assert all(authenticate_key(key).organization == demo for key in keys)
    assert ApiKey.objects.filter(organization=demo, name__startswith="demo-", is_staff=False).count() == 2
    for lines, key in ((first, keys[0]), (second, keys[1])):
        assert lines[-3] == "Demo API key:"
        assert "curl" in lines[-2] and f"Bearer {key}" in lines[-2]
        # Of an example that needs no secret (eliza-weather, first by name, does).
        assert '"pluginId": "json-tools"' in lines[-2]
        # And an operator key, for what only operators see (GET /stats).
        operator_line = lines[-4]
        assert operator_line.startswith("Operator (staff) API key, for GET /stats")
        operator_key = operator_line.rsplit(" ", 1)[1]
        assert authenticate_key(operator_key).is_staff and operator_key not in keys
    assert ApiKey.objects.filter(organization=demo, name__startswith="operator-", is_staff=True).count() == 2

    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    assert any(line.startswith("Admin user: admin / ") for line in first)
    assert not any(line.startswith("Admin user: admin / ") for line in second)
    assert any("already installed" in line for line in second)


@pytest.mark.django_db
def test_seed_demo_without_admin():
    run_command("seed_demo", "--no-admin")
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_seed_demo_without_the_shared_packages_leaves_out_what_needs_them(settings):
    settings.SANDBOX_SHARED_PACKAGES = ""
    lines = run_command("seed_demo", "--no-admin")
    skipped = [line for line in lines if line.startswith("Plugin matrix-tools: not installed")]
    assert skipped and "imports 'numpy'" in skipped[0] and "make shared-packages" in skipped[0], lines
    assert sorted(Plugin.objects.values_list("slug", flat=True)) == [n for n in EXAMPLE_NAMES if n != "matrix-tools"]
    assert lines[-3] == "Demo API key:"
