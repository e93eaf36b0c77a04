"""The echo plugin the plugin tests upload, install and break: its zips (well
formed or not), the upload call and the checks of its error envelope, and its
installation through the service layer (no upload)."""

import io
import json
import stat
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from plugins.models import Plugin, PluginVersion
from plugins.services import install_version
from tests.factories import EXAMPLES

SOURCE = "def echo(params, ctx):\n    return {'echo': params}\n"


def manifest(name="echo", version="1.0.0", **extra):
    return {
        "name": name,
        "version": version,
        "entrypoint": "plugin.py",
        "description": f"{name} plugin",
        "actions": {"echo": {"handler": "echo", "description": "Echo the params", "params": {"type": "object"}}},
        **extra,
    }


def zip_of(*entries):
    """A zip of (name or ZipInfo, text or bytes) entries, as an uploader might build it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def plugin_zip(name="echo", version="1.0.0", source=SOURCE, **extra):
    return zip_of(("plugin.json", json.dumps(manifest(name, version, **extra))), ("plugin.py", source))


def example_zip(name):
    """An example plugin's folder as an uploader zips it: every file, wheels included."""
    folder = EXAMPLES / name
    return zip_of(*[(path.relative_to(folder).as_posix(), path.read_bytes())
                    for path in sorted(folder.rglob("*")) if path.is_file() and "__pycache__" not in path.parts])


def upload(client, archive=None, **fields):
    data = dict(fields)
    if archive is not None:
        data["archive"] = SimpleUploadedFile("plugin.zip", archive, content_type="application/zip")
    return client.post("/plugins", data, format="multipart")


def assert_validation_error(response, field, *words):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "VALIDATION_ERROR" and error["retryable"] is False
    problems = {detail["field"]: detail["message"] for detail in error["details"]}
    assert field in problems, problems
    for word in words:
        assert word in problems[field] and word in error["message"]
    return error


def assert_nothing_stored():
    assert not Plugin.objects.exists()
    assert not PluginVersion.objects.exists()
    assert not AuditEvent.objects.exists()


def _symlink():
    link = zipfile.ZipInfo("plugin.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    return link


BAD_ARCHIVES = {
    "zip slip": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("../../evil.py", "x = 1\n")),
        "archive",
        "'..'",
    ),
    "absolute path": (
        zip_of(("plugin.json", json.dumps(manifest())), ("/etc/evil.py", "x = 1\n")),
        "archive",
        "absolute",
    ),
    "symlink": (
        zip_of(("plugin.json", json.dumps(manifest())), (_symlink(), "/etc/passwd")),
        "archive",
        "symbolic link",
    ),
    "zip bomb": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("data.txt", "a" * (900 * 1024))),
        "archive",
        "zip bomb",
    ),
    "missing handler": (
        plugin_zip(source="def something_else(params, ctx):\n    return 1\n"),
        "actions.echo.handler",
        "'echo' is not a top-level function",
    ),
    "syntax error": (plugin_zip(source="def echo(params, ctx)\n    return 1\n"), "plugin.py", "line 1"),
    "bad schema": (
        zip_of(("plugin.json", json.dumps(manifest(version="one"))), ("plugin.py", SOURCE)),
        "version",
        "semantic version",
    ),
    "bad params schema": (
        zip_of(
            ("plugin.json", json.dumps(manifest(actions={"echo": {"handler": "echo", "params": {"type": "nope"}}}))),
            ("plugin.py", SOURCE),
        ),
        "actions.echo.params.type",
        "not a valid JSON Schema",
    ),
    "manifest not JSON": (zip_of(("plugin.json", "{nope"), ("plugin.py", SOURCE)), "plugin.json", "not valid JSON"),
    "no manifest": (zip_of(("plugin.py", SOURCE)), "archive", "plugin.json is missing"),
    "not a zip": (b"this is not a zip file", "archive", "not a readable zip file"),
    "binary file": (
        zip_of(("plugin.json", json.dumps(manifest())), ("plugin.py", SOURCE), ("helper.so", b"\x7fELF")),
        "archive",
        "only .py, .js, .cjs, .json, .txt, .md",
    ),
}


def install(name="echo", version="1.0.0", **options):
    plugin_manifest = manifest(name, version)
    files = {"plugin.json": json.dumps(plugin_manifest), "plugin.py": SOURCE}
    return install_version(plugin_manifest, files, **options)


def active_versions(slug):
    return list(PluginVersion.objects.filter(plugin__slug=slug, is_active=True).values_list("version", flat=True))
