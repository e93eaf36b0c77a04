"""Loading and calling the example plugins in examples/ directly (no Django,
no sandbox), for the tests of each example.

The host service never imports plugin code; these tests do, so that each
handler's behaviour can be checked directly. Parameters are validated against
the action's schema before every call, as the host would, so the schemas and
the handlers are tested together.
"""

import importlib.util
import json
from functools import lru_cache

import jsonschema

from sandbox.child.runtime import Context
from tests.factories import EXAMPLES

PLUGINS = ("text-tools", "json-tools", "stats")


class Ctx:
    """The parts of the sandbox context a handler may use."""

    def __init__(self):
        self.secrets = {}
        self.logs = []
        self.log = self.logs.append
        self.execution_id = "test-execution"
        self.actor_id = "test-actor"
        self.http = None

    # The sandbox's own: refusing params raises runtime.InvalidParams.
    reject = Context.reject


@lru_cache(maxsize=None)
def load(plugin):
    """Return (manifest, module) for an example plugin."""
    folder = EXAMPLES / plugin
    manifest = json.loads((folder / "plugin.json").read_text(encoding="utf-8"))
    module_name = "example_plugin_" + plugin.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, folder / manifest["entrypoint"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return manifest, module


def schema_errors(plugin, action, params):
    schema = load(plugin)[0]["actions"][action]["params"]
    return list(jsonschema.Draft202012Validator(schema).iter_errors(params))


def call(plugin, action, params):
    """Validate params like the host does, run the handler and check that the
    result survives strict JSON serialisation (no NaN, no custom types)."""
    manifest, module = load(plugin)
    spec = manifest["actions"][action]
    jsonschema.Draft202012Validator(spec["params"]).validate(params)
    result = getattr(module, spec["handler"])(params, Ctx())
    return json.loads(json.dumps(result, allow_nan=False))


def action_ids():
    return [
        (plugin, action)
        for plugin in PLUGINS
        for action in json.loads((EXAMPLES / plugin / "plugin.json").read_text())["actions"]
    ]
