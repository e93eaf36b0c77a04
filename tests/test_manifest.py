"""Manifest validation and archive safety: pure logic, no database."""

import copy
import io
import json
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from plugins.archive import (
    MAX_FILES,
    build_archive,
    files_from_module,
    files_from_zip,
    load_plugin_source,
    sha256_hex,
)
from plugins.manifest import ManifestError, validate_manifest, validate_plugin

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_NAMES = sorted(path.name for path in EXAMPLES.iterdir() if (path / "plugin.json").exists())

SOURCE = """\
def get_forecast(params, ctx):
    return {"city": params["city"]}


async def ping(params, ctx):
    return "pong"
"""

MANIFEST = {
    "name": "weather",
    "version": "1.2.0",
    "entrypoint": "plugin.py",
    "description": "Forecasts.",
    "actions": {
        "getForecast": {
            "handler": "get_forecast",
            "description": "Forecast for a city.",
            "params": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "cacheable": True,
            "default": None,
            "timeoutMs": 10000,
            "examples": [{"params": {"city": "Oslo"}}],
        },
        "ping": {"handler": "ping"},
    },
    "network": {"allowedDomains": ["api.weather.gov", "*.example.com"]},
    "secrets": ["API_KEY"],
    "limits": {"memoryMb": 256},
}


def manifest(**changes):
    result = copy.deepcopy(MANIFEST)
    result.update(changes)
    return result


def action(**changes):
    result = copy.deepcopy(MANIFEST["actions"]["getForecast"])
    result.update(changes)
    return result


def files(source=SOURCE, **more):
    return {"plugin.json": json.dumps(MANIFEST), "plugin.py": source, **more}


def errors_of(call, *args):
    with pytest.raises(ManifestError) as caught:
        call(*args)
    return {error["field"]: error["message"] for error in caught.value.errors}


def make_zip(entries, compression=zipfile.ZIP_DEFLATED):
    """entries: (name or ZipInfo, bytes or str) pairs, written as given."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names some tests need
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, content in entries:
                archive.writestr(name, content)
    return buffer.getvalue()


def valid_zip(*extra):
    return make_zip([("plugin.json", json.dumps(MANIFEST)), ("plugin.py", SOURCE), *extra])


# --- the manifest ------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_plugins_are_valid(name):
    example_manifest, example_files = load_plugin_source(EXAMPLES / name)
    assert validate_plugin(example_manifest, example_files)["name"] == name


def test_valid_manifest_gets_its_defaults_filled_in():
    result = validate_plugin(manifest(), files())
    ping = result["actions"]["ping"]
    assert ping == {
        "handler": "ping",
        "description": "",
        "params": {"type": "object"},
        "cacheable": False,
        "idempotent": True,
        "default": None,
        "examples": [],
    }
    assert result["actions"]["getForecast"]["cacheable"] is True

    minimal = validate_manifest(
        {"name": "x", "version": "0.1.0", "entrypoint": "plugin.py", "actions": {"a": {"handler": "a"}}}
    )
    assert minimal["description"] == ""
    assert minimal["network"] == {"allowedDomains": []}
    assert minimal["secrets"] == []
    assert minimal["limits"] == {}


def test_validation_does_not_change_its_input():
    original = manifest()
    validate_manifest(original)
    assert original == MANIFEST


@pytest.mark.parametrize(
    "field,value",
    [
        ("name", "Weather"),
        ("name", "-weather"),
        ("name", "weather_app"),
        ("name", "weather\n"),
        ("name", "w" * 64),
        ("name", ""),
        ("version", "1.2"),
        ("version", "v1.2.0"),
        ("version", "01.2.0"),
        ("version", "1.2.0\n"),
        ("entrypoint", "/plugin.py"),
        ("entrypoint", "../plugin.py"),
        ("entrypoint", "src/../plugin.py"),
        ("entrypoint", "plugin.js"),
        ("entrypoint", "plugin"),
        ("secrets", ["api_key"]),
        ("secrets", ["API_KEY", "API_KEY"]),
        ("limits", {"memoryMb": 8}),
        ("limits", {"memoryMb": 8192}),
        ("limits", {"memory": 256}),
        ("network", {"allowedDomains": "api.weather.gov"}),
        ("description", 42),
    ],
)
def test_top_level_fields_are_checked(field, value):
    errors = errors_of(validate_manifest, manifest(**{field: value}))
    assert any(key.startswith(field) for key in errors), errors


def test_version_accepts_prerelease_and_build_metadata():
    for version in ("0.0.1", "2.0.0-beta.1", "1.0.0+build.5", "10.20.30-rc-1+sha.abc"):
        assert validate_manifest(manifest(version=version))["version"] == version


def test_nested_entrypoint_is_allowed():
    result = validate_plugin(manifest(entrypoint="src/main.py"), {"plugin.json": "{}", "src/main.py": SOURCE})
    assert result["entrypoint"] == "src/main.py"


def test_required_fields_are_reported_by_name():
    incomplete = manifest()
    del incomplete["name"], incomplete["actions"]
    assert errors_of(validate_manifest, incomplete) == {"name": "is required", "actions": "is required"}


def test_a_manifest_must_be_an_object():
    assert "manifest" in errors_of(validate_manifest, ["not", "an", "object"])


def test_a_plugin_needs_at_least_one_action():
    assert "actions" in errors_of(validate_manifest, manifest(actions={}))


def test_unknown_keys_are_refused_so_typos_do_not_pass_silently():
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": action(cachable=True)}))
    assert errors["actions.getForecast.cachable"].startswith("is not a known field (known: handler, description,")
    assert "entry_point" in errors_of(validate_manifest, manifest(entry_point="plugin.py"))


@pytest.mark.parametrize("action_name", ["get-forecast", "1action", "_private", "a" * 65, "get forecast"])
def test_action_names_are_checked(action_name):
    errors = errors_of(validate_manifest, manifest(actions={action_name: action()}))
    assert action_name in errors["actions"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("handler", "get-forecast"),
        ("handler", "1st"),
        ("handler", ""),
        ("cacheable", "yes"),
        ("idempotent", 1),
        ("timeoutMs", 0),
        ("timeoutMs", 300001),
        ("timeoutMs", 1.5),
        ("params", "string"),
        ("examples", {"params": {}}),
        ("examples", [{"city": "Oslo"}]),
    ],
)
def test_action_fields_are_checked(field, value):
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": action(**{field: value})}))
    assert any(key.startswith(f"actions.getForecast.{field}") for key in errors), errors


def test_missing_handler_is_reported_for_its_action():
    no_handler = action()
    del no_handler["handler"]
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": no_handler}))
    assert errors == {"actions.getForecast.handler": "is required"}


@pytest.mark.parametrize(
    "domain", ["10.0.0.1", "[::1]", "*.com", "*", "api.example.com:443", "https://api.example.com", "a*.example.com"]
)
def test_bad_allowed_domains_are_refused(domain):
    errors = errors_of(validate_manifest, manifest(network={"allowedDomains": ["ok.example.com", domain]}))
    assert set(errors) == {"network.allowedDomains[1]"}


def test_params_must_be_a_valid_json_schema():
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": action(params={"type": "nope"})}))
    assert "not a valid JSON Schema" in errors["actions.getForecast.params.type"]

    errors = errors_of(
        validate_manifest, manifest(actions={"getForecast": action(params={"type": "object", "required": "city"})})
    )
    assert any(field.startswith("actions.getForecast.params") for field in errors)


def test_examples_must_match_the_params_schema():
    bad_examples = [{"params": {"city": "Oslo"}}, {"params": {"city": 42}}, {"params": {}}]
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": action(examples=bad_examples)}))
    assert "is not of type 'string'" in errors["actions.getForecast.examples[1].params.city"]
    assert "'city' is a required property" in errors["actions.getForecast.examples[2].params"]
    assert not any("examples[0]" in field for field in errors)


def test_remote_schema_references_are_never_fetched():
    params = {"$ref": "https://example.com/schemas/forecast.json"}
    errors = errors_of(validate_manifest, manifest(actions={"getForecast": action(params=params)}))
    assert "unresolvable $ref" in errors["actions.getForecast.params"]


# --- the code ---------------------------------------------------------------


def test_declared_handler_missing_from_the_entrypoint():
    errors = errors_of(validate_plugin, manifest(), files(SOURCE.replace("def get_forecast", "def forecast")))
    assert errors == {
        "actions.getForecast.handler": "'get_forecast' is not a top-level function (def or async def) in plugin.py"
    }


def test_handlers_must_be_top_level_functions():
    nested = """\
class Weather:
    def get_forecast(self, params, ctx):
        return {}

if True:
    def ping(params, ctx):
        return "pong"

get_forecast = Weather().get_forecast
"""
    errors = errors_of(validate_plugin, manifest(), files(nested))
    assert set(errors) == {"actions.getForecast.handler", "actions.ping.handler"}


def test_handler_defined_in_another_module_is_not_enough():
    helper = "def get_forecast(params, ctx):\n    return {}\n"
    entrypoint = "async def ping(params, ctx):\n    return 1\n"
    errors = errors_of(validate_plugin, manifest(), files(entrypoint, **{"helpers.py": helper}))
    assert set(errors) == {"actions.getForecast.handler"}


def test_syntax_error_in_the_entrypoint():
    errors = errors_of(validate_plugin, manifest(), files(SOURCE + "\ndef broken(:\n    pass\n"))
    assert errors["plugin.py"] == "line 8: invalid syntax"


def test_syntax_error_in_any_module_is_reported():
    errors = errors_of(validate_plugin, manifest(), files(**{"lib/util.py": "x = (1,\n"}))
    assert set(errors) == {"lib/util.py"}


def test_errors_only_the_compiler_finds_are_reported():
    errors = errors_of(validate_plugin, manifest(), files(**{"util.py": "return 1\n"}))
    assert "'return' outside function" in errors["util.py"]


def test_entrypoint_missing_from_the_files():
    errors = errors_of(validate_plugin, manifest(entrypoint="main.py"), files())
    assert "main.py is not among the plugin's files" in errors["entrypoint"]


def test_manifest_and_code_errors_are_reported_together():
    broken = manifest(
        network={"allowedDomains": ["127.0.0.1"]},
        actions={"getForecast": action(examples=[{"params": {"city": 1}}]), "ping": {"handler": "nope"}},
    )
    with pytest.raises(ManifestError) as caught:
        validate_plugin(broken, files())
    fields = [error["field"] for error in caught.value.errors]
    assert fields == [
        "actions.getForecast.examples[0].params.city", "network.allowedDomains[0]", "actions.ping.handler",
    ]
    text = str(caught.value)
    assert text.count("; ") == 2 and text.startswith("actions.getForecast.examples[0].params.city: ")


def test_validation_never_runs_plugin_code(tmp_path):
    marker = tmp_path / "ran"
    hostile = f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n\n" + SOURCE
    validate_plugin(manifest(), files(hostile))
    assert not marker.exists()


# --- archives ---------------------------------------------------------------


def test_build_archive_is_deterministic_and_round_trips():
    plugin_files = files(**{"README.md": "# Weather\n", "lib/util.py": "X = 1\n"})
    archive = build_archive(plugin_files)
    assert build_archive(dict(reversed(list(plugin_files.items())))) == archive
    assert sha256_hex(archive) == sha256_hex(build_archive(plugin_files))
    assert files_from_zip(archive) == plugin_files
    infos = zipfile.ZipFile(io.BytesIO(archive)).infolist()
    assert [info.filename for info in infos] == sorted(plugin_files)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_build_archive_enforces_the_rules_too():
    assert "archive" in errors_of(build_archive, files(**{"../escape.py": "x = 1\n"}))
    assert "archive" in errors_of(build_archive, {"plugin.py": SOURCE})


def test_a_valid_zip_is_read():
    assert files_from_zip(valid_zip(("docs/", ""), ("notes.txt", "hello"))) == files(**{"notes.txt": "hello"})


def test_a_byte_order_mark_is_dropped():
    archive = make_zip([("plugin.json", "\ufeff" + json.dumps(MANIFEST)), ("plugin.py", SOURCE)])
    assert json.loads(files_from_zip(archive)["plugin.json"]) == MANIFEST


@pytest.mark.parametrize(
    "name,complaint",
    [
        ("../x.py", "'..'"),
        ("lib/../../x.py", "'..'"),
        ("/etc/x.py", "absolute"),
        ("C:/x.py", "absolute"),
        ("lib\\x.py", "separator"),
        ("lib//x.py", "empty"),
        ("./x.py", "'.'"),
    ],
)
def test_paths_that_could_escape_are_refused(name, complaint):
    errors = errors_of(files_from_zip, valid_zip((name, "x = 1\n")))
    assert complaint in errors["archive"]


def test_symlink_entries_are_refused():
    link = zipfile.ZipInfo("link.py")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    errors = errors_of(files_from_zip, valid_zip((link, "/etc/passwd")))
    assert "symbolic link" in errors["archive"]


def test_device_entries_are_refused():
    device = zipfile.ZipInfo("device.txt")
    device.external_attr = (stat.S_IFCHR | 0o644) << 16
    assert "not a regular file" in errors_of(files_from_zip, valid_zip((device, "")))["archive"]


def test_a_highly_compressible_file_is_refused_as_a_zip_bomb():
    errors = errors_of(files_from_zip, valid_zip(("data.txt", "a" * (900 * 1024))))
    assert "zip bomb" in errors["archive"]


def test_a_file_over_the_size_cap_is_refused_before_it_is_read():
    errors = errors_of(files_from_zip, valid_zip(("data.txt", b"\0" * (20 * 1024 * 1024))))
    assert "at most 1048576" in errors["archive"]


def test_too_much_content_in_all_is_refused():
    chunk = "".join(f"{i:08d} {i * 7919 % 100003:06d}\n" for i in range(60_000))  # ~960 KiB, compresses poorly
    entries = [(f"part{i}.txt", chunk) for i in range(6)]
    errors = errors_of(files_from_zip, valid_zip(*entries))
    assert "in all" in errors["archive"]


def test_sizes_that_lie_are_caught_when_reading():
    archive = bytearray(valid_zip(("data.txt", "".join(f"{i}\n" for i in range(50_000)))))
    # Declare a tiny uncompressed size in both the local and the central header.
    local = archive.rfind(b"PK\x03\x04")
    central = archive.rfind(b"PK\x01\x02")
    archive[local + 22 : local + 26] = (10).to_bytes(4, "little")
    archive[central + 24 : central + 28] = (10).to_bytes(4, "little")
    errors = errors_of(files_from_zip, bytes(archive))
    assert "not a readable zip file" in errors["archive"]


def test_too_many_files_are_refused():
    entries = [(f"m{i}.py", "") for i in range(MAX_FILES)]
    assert "at most 200" in errors_of(files_from_zip, valid_zip(*entries))["archive"]


def test_non_utf8_files_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("notes.txt", "café".encode("latin-1"))))
    assert "notes.txt: not UTF-8 text" == errors["archive"]


def test_binary_text_files_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("notes.txt", b"abc\x00def")))
    assert "NUL" in errors["archive"]


@pytest.mark.parametrize("name", ["module.pyc", "lib.so", "LICENSE", "run.sh", "image.png"])
def test_only_text_file_types_are_allowed(name):
    assert "only .py, .json, .txt, .md" in errors_of(files_from_zip, valid_zip((name, "x")))["archive"]


def test_duplicate_names_are_refused():
    errors = errors_of(files_from_zip, valid_zip(("plugin.py", "x = 2\n")))
    assert "more than once" in errors["archive"]


def test_plugin_json_must_be_at_the_root():
    archive = make_zip([("weather/plugin.json", json.dumps(MANIFEST)), ("weather/plugin.py", SOURCE)])
    message = errors_of(files_from_zip, archive)["archive"]
    assert "plugin.json is missing" in message and "weather/plugin.json" in message


def test_garbage_is_not_a_zip():
    assert "not a readable zip file" in errors_of(files_from_zip, b"this is not a zip")["archive"]


def test_unsupported_compression_is_refused():
    archive = make_zip([("plugin.json", json.dumps(MANIFEST)), ("plugin.py", SOURCE)], zipfile.ZIP_BZIP2)
    assert "stored or deflated" in errors_of(files_from_zip, archive)["archive"]


# --- loading from disk ------------------------------------------------------


def write_plugin(folder, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files(**extra).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    return folder


def test_load_a_folder_leaving_out_caches_and_dotfiles(tmp_path):
    folder = write_plugin(tmp_path / "weather", **{"lib/util.py": "X = 1\n"})
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"\x00binary")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / ".DS_Store").write_bytes(b"\x00")
    loaded_manifest, loaded_files = load_plugin_source(folder)
    assert loaded_manifest == MANIFEST
    assert sorted(loaded_files) == ["lib/util.py", "plugin.json", "plugin.py"]


def test_load_a_folder_refuses_symlinks(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "secrets.txt").symlink_to("/etc/passwd")
    assert "symbolic link" in errors_of(load_plugin_source, folder)["archive"]


def test_load_a_folder_refuses_other_file_types(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "helper.so").write_bytes(b"ELF")
    assert "only .py" in errors_of(load_plugin_source, folder)["archive"]


def test_load_a_zip_file(tmp_path):
    path = tmp_path / "weather.zip"
    path.write_bytes(valid_zip())
    assert load_plugin_source(path) == (MANIFEST, files())


def test_load_a_single_module_with_the_manifest_beside_it(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    assert load_plugin_source(folder / "plugin.py") == (MANIFEST, files())


def test_load_a_single_module_with_an_explicit_manifest(tmp_path):
    (tmp_path / "forecast.py").write_text(SOURCE)
    (tmp_path / "weather.json").write_text(json.dumps(MANIFEST))
    loaded_manifest, loaded_files = load_plugin_source(tmp_path / "forecast.py", tmp_path / "weather.json")
    # The module is stored as the entrypoint the manifest names.
    assert loaded_files == files()
    assert validate_plugin(loaded_manifest, loaded_files)["name"] == "weather"


def test_load_a_single_module_without_a_manifest(tmp_path):
    (tmp_path / "forecast.py").write_text(SOURCE)
    assert "cannot read" in errors_of(load_plugin_source, tmp_path / "forecast.py")["archive"]


def test_load_reports_invalid_json(tmp_path):
    folder = write_plugin(tmp_path / "weather")
    (folder / "plugin.json").write_text("{'name': 'weather'}")
    assert "not valid JSON" in errors_of(load_plugin_source, folder)["plugin.json"]


def test_files_from_module_defaults_to_the_given_name():
    module_files = files_from_module(SOURCE, json.dumps({"name": "x"}), filename="x.py")
    assert sorted(module_files) == ["plugin.json", "x.py"]


def test_load_a_missing_path(tmp_path):
    assert "cannot read" in errors_of(load_plugin_source, tmp_path / "nope.zip")["archive"]
