"""Installing plugin versions, the operator commands, and the admin pages."""

import io
import json
import re
import shutil
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEvent
from executions.models import Execution
from plugins.archive import files_from_zip, sha256_hex
from plugins.manifest import ManifestError
from plugins.models import Plugin, PluginVersion
from plugins.services import (
    activate_version,
    install_version,
    plugin_files,
    set_plugin_enabled,
)
from quotas.authentication import authenticate_key
from quotas.enforcement import utc_today
from quotas.models import ApiKey, DailyUsage, Organization, Tier

from .conftest import EXAMPLES

EXAMPLE_NAMES = sorted(path.name for path in EXAMPLES.iterdir() if (path / "plugin.json").exists())
KEY_PATTERN = re.compile(r"pex_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")

SOURCE = "def echo(params, ctx):\n    return params\n"


def run(command, *args, **options):
    """Run a management command; return its stdout lines."""
    out = io.StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue().splitlines()


def manifest(name="echo", version="1.0.0", **extra):
    return {
        "name": name,
        "version": version,
        "entrypoint": "plugin.py",
        "description": f"{name} plugin",
        "actions": {"echo": {"handler": "echo", "params": {"type": "object"}}},
        **extra,
    }


def install(name="echo", version="1.0.0", **options):
    plugin_manifest = manifest(name, version)
    files = {"plugin.json": json.dumps(plugin_manifest), "plugin.py": SOURCE}
    return install_version(plugin_manifest, files, **options)


def active_versions(slug):
    return list(PluginVersion.objects.filter(plugin__slug=slug, is_active=True).values_list("version", flat=True))


# --- services ---------------------------------------------------------------


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


# --- install_plugin ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_install_plugin_from_each_example_folder(name):
    lines = run("install_plugin", str(EXAMPLES / name), "--activate")
    plugin_manifest = json.loads((EXAMPLES / name / "plugin.json").read_text())
    assert lines[-1] == f"{name} {plugin_manifest['version']}"
    version = PluginVersion.objects.get(plugin__slug=name)
    assert version.is_active
    assert sorted(plugin_files(version)) == ["plugin.json", "plugin.py"]


@pytest.mark.django_db
def test_install_plugin_from_a_zip_without_activating(tmp_path):
    archive_path = tmp_path / "stats.zip"
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in (EXAMPLES / "stats").iterdir():
            if path.is_file():
                archive.write(path, path.name)
    lines = run("install_plugin", str(archive_path))
    assert lines[-1] == "stats 1.0.0"
    assert "inactive" in lines[0]
    assert active_versions("stats") == []


@pytest.mark.django_db
def test_install_plugin_from_a_single_module(tmp_path):
    (tmp_path / "echo_plugin.py").write_text(SOURCE)
    (tmp_path / "echo.json").write_text(json.dumps(manifest()))
    module, manifest_path = str(tmp_path / "echo_plugin.py"), str(tmp_path / "echo.json")
    lines = run("install_plugin", module, "--manifest", manifest_path, "--activate")
    assert lines[-1] == "echo 1.0.0"
    assert plugin_files(PluginVersion.objects.get())["plugin.py"] == SOURCE

    (tmp_path / "plugin.json").write_text(json.dumps(manifest(version="1.1.0")))
    assert run("install_plugin", str(tmp_path / "echo_plugin.py"))[-1] == "echo 1.1.0"


@pytest.mark.django_db
def test_install_plugin_with_an_owner(org):
    install_folder = EXAMPLES / EXAMPLE_NAMES[0]
    run("install_plugin", str(install_folder), "--owner", org.slug)
    assert Plugin.objects.get().owner == org
    assert AuditEvent.objects.get().organization == org
    with pytest.raises(CommandError, match="no organization 'nobody'"):
        run("install_plugin", str(install_folder), "--owner", "nobody")


@pytest.mark.django_db
def test_install_plugin_lists_the_field_errors(tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(EXAMPLES / "stats", folder, ignore=shutil.ignore_patterns("__pycache__"))
    broken = json.loads((folder / "plugin.json").read_text())
    broken["actions"]["describe"]["handler"] = "summarise"
    broken["limits"]["memoryMb"] = 1
    (folder / "plugin.json").write_text(json.dumps(broken))
    with pytest.raises(CommandError) as caught:
        run("install_plugin", str(folder))
    message = str(caught.value)
    assert "limits.memoryMb: 1 is less than the minimum of 16" in message
    assert not Plugin.objects.exists()


@pytest.mark.django_db
def test_install_plugin_refuses_an_existing_version():
    run("install_plugin", str(EXAMPLES / "stats"))
    with pytest.raises(CommandError, match="versions are immutable"):
        run("install_plugin", str(EXAMPLES / "stats"))


@pytest.mark.django_db
def test_install_plugin_refuses_an_unsafe_archive(tmp_path):
    archive_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("plugin.json", json.dumps(manifest()))
        archive.writestr("../plugin.py", SOURCE)
    with pytest.raises(CommandError, match=r"archive: '\.\./plugin\.py'"):
        run("install_plugin", str(archive_path))


# --- create_org and create_api_key -----------------------------------------


@pytest.mark.django_db
def test_create_org(tiers):
    lines = run("create_org", "acme", "--tier", "enterprise", "--name", "Acme Inc", "--owner-email", "ops@acme.test")
    assert lines[-1] == "acme"
    organization = Organization.objects.get(slug="acme")
    assert organization.name == "Acme Inc"
    assert organization.tier.name == "enterprise"
    assert organization.owner_email == "ops@acme.test"


@pytest.mark.django_db
def test_create_org_on_an_operator_defined_tier(tiers):
    Tier.objects.create(name="research", daily_limit=50, concurrent_limit=2)
    assert run("create_org", "lab", "--tier", "research")[-1] == "lab"
    assert Organization.objects.get(slug="lab").name == "lab"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args,complaint",
    [
        (["acme", "--tier", "gold"], "unknown tier 'gold' (existing tiers: enterprise, free, pro)"),
        (["Not A Slug", "--tier", "free"], "slug:"),
        (["acme2", "--tier", "free", "--owner-email", "not-an-email"], "owner_email:"),
    ],
)
def test_create_org_refuses_bad_input(tiers, args, complaint):
    with pytest.raises(CommandError) as caught:
        run("create_org", *args)
    assert complaint in str(caught.value)


@pytest.mark.django_db
def test_create_org_refuses_an_existing_slug(org):
    with pytest.raises(CommandError, match="organization 'acme' already exists"):
        run("create_org", "acme", "--tier", "free")


@pytest.mark.django_db
def test_create_api_key_prints_the_key_and_stores_only_its_hash(org):
    key = run("create_api_key", org.slug, "--name", "ci")[-1]
    assert KEY_PATTERN.fullmatch(key)
    record = ApiKey.objects.get()
    assert (record.organization, record.name, record.is_staff) == (org, "ci", False)
    secret = key.split("_", 2)[2]
    assert secret not in record.hashed_secret and record.matches(secret)
    assert authenticate_key(key).api_key == record

    staff_key = run("create_api_key", org.slug, "--staff")[-1]
    assert authenticate_key(staff_key).is_staff


@pytest.mark.django_db
def test_create_api_key_for_an_unknown_organization(tiers):
    with pytest.raises(CommandError, match="no organization 'ghost'"):
        run("create_api_key", "ghost")


# --- seed_demo --------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    first = run("seed_demo")
    second = run("seed_demo")

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
    assert ApiKey.objects.filter(organization=demo, name__startswith="demo-").count() == 2
    for lines, key in ((first, keys[0]), (second, keys[1])):
        assert lines[-3] == "Demo API key:"
        assert "curl" in lines[-2] and f"Bearer {key}" in lines[-2]

    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1
    assert any(line.startswith("Admin user: admin / ") for line in first)
    assert not any(line.startswith("Admin user: admin / ") for line in second)
    assert any("already installed" in line for line in second)


@pytest.mark.django_db
def test_seed_demo_without_admin():
    run("seed_demo", "--no-admin")
    assert not get_user_model().objects.exists()


# --- admin ------------------------------------------------------------------


@pytest.fixture
def admin_data(examples, org):
    version = examples[EXAMPLE_NAMES[0]]
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

