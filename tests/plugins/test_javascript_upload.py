"""The upload rules of JavaScript plugins (`"runtime": "node"`): Node's parser
checks the syntax without running anything, each handler must be exported,
dependencies must come bundled, and no native addon gets in."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from plugins.models import PluginVersion
from tests.plugins.helpers import assert_nothing_stored, assert_validation_error, upload, zip_of

SOURCE = "exports.echo = async (params, ctx) => ({ echo: params });\n"


def manifest(**extra):
    return {"name": "js-echo", "version": "1.0.0", "runtime": "node", "entrypoint": "plugin.js",
            "actions": {"echo": {"handler": "echo"}}, **extra}


def js_zip(source=SOURCE, *more, **extra):
    return zip_of(("plugin.json", json.dumps(manifest(**extra))), ("plugin.js", source), *more)


@pytest.mark.django_db
def test_a_javascript_plugin_uploads(api):
    response = upload(api, js_zip(SOURCE, ("lib/util.js", "module.exports = { twice: (n) => 2 * n };\n")))
    assert response.status_code == 201, response.content
    assert PluginVersion.objects.get().manifest["runtime"] == "node"


@pytest.mark.django_db
def test_a_single_module_uploads_with_its_manifest(api):
    without_entrypoint = {key: value for key, value in manifest().items() if key != "entrypoint"}
    module = SimpleUploadedFile("echo.js", SOURCE.encode())
    response = api.post("/plugins", {"source": module, "manifest": json.dumps(without_entrypoint)}, format="multipart")
    assert response.status_code == 201, response.content
    assert PluginVersion.objects.get().manifest["entrypoint"] == "plugin.js"


@pytest.mark.django_db
def test_a_syntax_error_is_refused_with_its_line_and_nothing_runs(api, tmp_path):
    marker = tmp_path / "ran"
    source = f"require('fs').writeFileSync({str(marker)!r}, 'ran');\nexports.echo = (params) => {{ return params;\n"
    error = assert_validation_error(upload(api, js_zip(source)), "plugin.js", "SyntaxError")
    assert "line" in {d["field"]: d["message"] for d in error["details"]}["plugin.js"]
    assert not marker.exists()
    assert_nothing_stored()
    valid = f"require('fs').writeFileSync({str(marker)!r}, 'ran');\n" + SOURCE
    assert upload(api, js_zip(valid)).status_code == 201
    assert not marker.exists(), "the upload check ran the plugin's code"


@pytest.mark.django_db
def test_a_handler_that_is_not_exported_is_refused(api):
    assert_validation_error(upload(api, js_zip("const echo = (p) => p;\n")), "actions.echo.handler", "not exported")
    exported = "function echo(p) { return p; }\nmodule.exports = { echo };\n"
    assert upload(api, js_zip(exported)).status_code == 201


@pytest.mark.django_db
def test_dependencies_must_be_bundled(api):
    package = ("package.json", json.dumps({"name": "js-echo", "dependencies": {"left-pad": "^1.3.0"}}))
    assert_validation_error(upload(api, js_zip(SOURCE, package)), "package.json", "left-pad", "node_modules")
    bundled = ("node_modules/left-pad/index.js", "module.exports = (s, n) => String(s).padStart(n);\n")
    assert upload(api, js_zip("const pad = require('left-pad');\n" + SOURCE, package, bundled)).status_code == 201


@pytest.mark.django_db
def test_native_addons_and_binaries_are_refused(api):
    assert_validation_error(upload(api, js_zip(SOURCE, ("build/addon.node", b"\x7fELF\x02\x01\x01\x00"))), "archive", ".node")
    assert_validation_error(upload(api, js_zip(SOURCE, ("addon.js", b"\x7fELF\x02\x01\x01\x00\x00"))), "archive", "NUL")
    assert_nothing_stored()


@pytest.mark.django_db
def test_the_runtime_and_the_entrypoint_agree(api):
    assert_validation_error(upload(api, zip_of(("plugin.json", json.dumps(manifest(entrypoint="plugin.py"))),
                                               ("plugin.py", "def echo(p, c):\n    return p\n"))), "entrypoint", "node")
    assert_validation_error(upload(api, js_zip(runtime="python")), "entrypoint", "python")
    assert_validation_error(upload(api, js_zip(runtime="ruby")), "runtime")
    assert_validation_error(upload(api, js_zip(limits={"memoryMb": 32})), "limits.memoryMb", "64")


# --- elizaOS plugins ("adapter": "eliza") ---------------------------------------

ELIZA_SOURCE = """
const greet = { name: 'GREET', validate: async () => true, handler: async () => ({ success: true }) };
module.exports = { name: 'greeter', actions: [greet] };
"""


def eliza_zip(source=ELIZA_SOURCE, *more, **extra):
    fields = {"adapter": "eliza", "actions": {"greet": {"handler": "GREET"}}, **extra}
    return zip_of(("plugin.json", json.dumps(manifest(**fields))), ("plugin.js", source), *more)


@pytest.mark.django_db
def test_an_eliza_plugin_uploads_with_its_settings(api):
    response = upload(api, eliza_zip(settings={"API_URL": "https://api.example.com"}))
    assert response.status_code == 201, response.content
    stored = PluginVersion.objects.get().manifest
    assert stored["adapter"] == "eliza" and stored["settings"] == {"API_URL": "https://api.example.com"}
    # The action may be defined in another of the plugin's files.
    split = "const greet = require('./greet');\nmodule.exports = { name: 'greeter', actions: [greet] };\n"
    action = ("greet.js", "module.exports = { name: 'GREET', validate: async () => true, handler: async () => 1 };\n")
    assert upload(api, eliza_zip(split, action, version="1.0.1")).status_code == 201


@pytest.mark.django_db
def test_an_eliza_plugin_must_name_its_actions(api):
    assert_validation_error(upload(api, eliza_zip(ELIZA_SOURCE.replace("'GREET'", "'WAVE'"))),
                            "actions.greet.handler", "no elizaOS action is named 'GREET'")
    no_plugin = "exports.GREET = async () => 1; // 'GREET'\n"
    assert_validation_error(upload(api, eliza_zip(no_plugin)), "entrypoint", "exports no elizaOS plugin")
    # A name only a bundled package mentions is not the plugin's action.
    bundled = ("node_modules/other/index.js", "module.exports = 'GREET';\n")
    assert_validation_error(upload(api, eliza_zip(ELIZA_SOURCE.replace("'GREET'", "'OTHER'"), bundled)),
                            "actions.greet.handler", "GREET")
    assert_nothing_stored()


@pytest.mark.django_db
def test_the_adapter_and_settings_are_for_javascript_eliza_plugins_only(api):
    python = {"name": "py-eliza", "version": "1.0.0", "entrypoint": "plugin.py", "adapter": "eliza",
              "actions": {"echo": {"handler": "echo"}}}
    archive = zip_of(("plugin.json", json.dumps(python)), ("plugin.py", "def echo(params, ctx):\n    return params\n"))
    assert_validation_error(upload(api, archive), "adapter", "runtime")
    assert_validation_error(upload(api, js_zip(settings={"API_URL": "x"})), "settings", "adapter")
    assert_validation_error(upload(api, eliza_zip(adapter="langchain")), "adapter")
    assert_validation_error(upload(api, eliza_zip(settings={"api_url": "x"})), "settings", "api_url", "UPPER_SNAKE_CASE")
    assert_nothing_stored()
