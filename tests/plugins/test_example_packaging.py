"""The example plugins as packages: manifest and action shapes, examples that
validate and run, handlers, imports, the examples README. (Loading them:
example_plugins.py; each plugin's behaviour: test_example_<plugin>.py.)"""

import ast
import inspect
import re
import sys

import jsonschema
import pytest

from tests.factories import EXAMPLES
from tests.plugins.example_plugins import PLUGINS, action_ids, call, load, schema_errors

REQUIRED_MANIFEST_KEYS = {
    "name", "version", "entrypoint", "description", "actions", "network", "secrets", "limits",
}
REQUIRED_ACTION_KEYS = {
    "handler", "description", "params", "cacheable", "default", "timeoutMs", "examples",
}


@pytest.mark.parametrize("plugin", PLUGINS)
def test_manifest_shape(plugin):
    manifest, _ = load(plugin)
    assert REQUIRED_MANIFEST_KEYS <= manifest.keys()
    assert manifest["name"] == plugin
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", manifest["name"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["entrypoint"] == "plugin.py"
    assert (EXAMPLES / plugin / manifest["entrypoint"]).is_file()
    assert isinstance(manifest["description"], str) and manifest["description"].strip()
    assert manifest["actions"]
    # Pure computation: no network access and no secrets.
    assert manifest["network"] == {"allowedDomains": []}
    assert manifest["secrets"] == []
    assert isinstance(manifest["limits"]["memoryMb"], int) and manifest["limits"]["memoryMb"] > 0


@pytest.mark.parametrize("plugin,action", action_ids())
def test_action_shape(plugin, action):
    manifest, module = load(plugin)
    spec = manifest["actions"][action]
    assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", action), "action names are camelCase"
    assert REQUIRED_ACTION_KEYS <= spec.keys()
    assert isinstance(spec["description"], str) and spec["description"].strip()

    handler = getattr(module, spec["handler"], None)
    assert inspect.isfunction(handler), f"{spec['handler']} is not a function in plugin.py"
    assert handler.__module__ == module.__name__
    assert list(inspect.signature(handler).parameters) == ["params", "ctx"]
    assert handler.__doc__, "handlers document why they behave as they do"

    schema = spec["params"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema.get("required", [])) <= schema["properties"].keys()

    assert spec["cacheable"] is True, "every example action is pure"
    assert isinstance(spec["timeoutMs"], int) and spec["timeoutMs"] > 0


@pytest.mark.parametrize("plugin,action", action_ids())
def test_examples_validate_and_run(plugin, action):
    spec = load(plugin)[0]["actions"][action]
    assert spec["examples"]
    for example in spec["examples"]:
        assert schema_errors(plugin, action, example["params"]) == []
        call(plugin, action, example["params"])


@pytest.mark.parametrize("plugin", PLUGINS)
def test_every_public_function_is_an_action_handler(plugin):
    manifest, module = load(plugin)
    handlers = {spec["handler"] for spec in manifest["actions"].values()}
    public = {
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")
    }
    assert public == handlers


@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_imports_only_the_standard_library(plugin):
    source = (EXAMPLES / plugin / "plugin.py").read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "plugins are single files; no relative imports"
            imported.add(node.module.split(".")[0])
    assert imported <= sys.stdlib_module_names


def test_readme_lists_every_plugin_and_action():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for plugin, action in action_ids():
        assert f"`{plugin}`" in readme
        assert f"`{action}`" in readme
