"""Manifest validation, and the checks of a plugin's code against it: pure
logic, no database. (Archives and loading from disk: test_archive.py.)"""

import pytest

from plugins.archive import load_plugin_source
from plugins.manifest import ManifestError, validate_manifest, validate_plugin
from plugins.packages import importable_names
from tests.factories import EXAMPLE_NAMES, EXAMPLES
from tests.plugins.weather import MANIFEST, SOURCE, action, errors_of, files, manifest

# --- the manifest ------------------------------------------------------------


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_plugins_are_valid(name):
    example_manifest, example_files = load_plugin_source(EXAMPLES / name)
    assert validate_plugin(example_manifest, example_files, importable_names(example_files))["name"] == name


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
