"""What an upload's code may import, and the entrypoint of a one-module plugin."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from plugins.manifest import Importable, ManifestError, validate_plugin
from plugins.models import PluginVersion
from tests.plugins.helpers import (
    assert_nothing_stored,
    assert_validation_error,
    upload,
    zip_of,
)

MANIFEST = {"name": "echo", "version": "1.0.0", "actions": {"echo": {"handler": "echo"}}}


def refusals(source, **more_files):
    manifest = {**MANIFEST, "entrypoint": "plugin.py"}
    try:
        validate_plugin(manifest, {"plugin.json": "{}", "plugin.py": source, **more_files})
    except ManifestError as error:
        return [problem["message"] for problem in error.errors]
    return []


@pytest.mark.parametrize("statement, top", [
    ("import requests", "requests"),
    ("import numpy as np", "numpy"),
    ("from yaml import safe_load", "yaml"),
    ("import json, django.conf", "django"),
    ("from pydantic.main import BaseModel", "pydantic"),
])
def test_an_import_outside_the_standard_library_is_refused_by_name(statement, top):
    messages = refusals(f"{statement}\ndef echo(params, ctx):\n    return params\n")
    assert len(messages) == 1, messages
    assert f"line 1: imports {top!r}" in messages[0] and "standard library" in messages[0]


def test_an_import_inside_a_handler_is_checked_too():
    source = "def echo(params, ctx):\n    import pandas\n    return params\n"
    assert refusals(source) == [
        "line 2: imports 'pandas', which neither the Python standard library, the plugin's own modules, "
        "its vendored wheels (vendor/*.whl) nor this service's shared packages (it has none: its operator has "
        "not set SANDBOX_SHARED_PACKAGES) provide"
    ]


def test_vendored_wheels_and_the_shared_set_satisfy_imports():
    source = "import tinylib\nimport numpy\ndef echo(params, ctx):\n    return params\n"
    manifest = {**MANIFEST, "entrypoint": "plugin.py"}
    files = {"plugin.json": "{}", "plugin.py": source}
    assert validate_plugin(manifest, files, Importable(vendored=frozenset({"tinylib"}), shared=frozenset({"numpy"})))
    with pytest.raises(ManifestError, match="imports 'numpy'.* nor the operator's shared packages provide"):
        validate_plugin(manifest, files, Importable(vendored=frozenset({"tinylib"}), shared=frozenset()))


def test_the_standard_library_and_the_plugins_own_modules_are_allowed():
    source = (
        "from __future__ import annotations\n"
        "import json, os.path, urllib.parse, asyncio\n"
        "from collections import OrderedDict\n"
        "import helpers\n"
        "from lib.util import twice\n"
        "from . import helpers as same\n"
        "def echo(params, ctx):\n    return twice(params)\n"
    )
    assert refusals(source, **{"helpers.py": "X = 1\n", "lib/__init__.py": "", "lib/util.py": "def twice(x): return x\n"}) == []


@pytest.mark.parametrize("handler", ["ImportError", "ModuleNotFoundError", "(ValueError, ImportError)", "Exception", ""])
def test_an_optional_import_the_code_handles_is_allowed(handler):
    source = f"try:\n    import ujson as json\nexcept {handler}:\n    import json\ndef echo(params, ctx):\n    return params\n"
    assert refusals(source) == []


def test_an_import_guarded_by_an_unrelated_handler_is_still_refused():
    source = "try:\n    import ujson\nexcept ValueError:\n    pass\ndef echo(params, ctx):\n    return params\n"
    assert len(refusals(source)) == 1


def test_every_refused_module_is_named_once_per_file():
    source = "import requests\nimport requests.adapters\nimport numpy\ndef echo(params, ctx):\n    import requests\n"
    messages = refusals(source)
    assert [message.split(",")[0] for message in messages] == ["line 1: imports 'requests'", "line 3: imports 'numpy'"]


@pytest.mark.django_db
def test_an_upload_importing_a_third_party_package_stores_nothing(api):
    source = "import requests\ndef echo(params, ctx):\n    return requests.get(params['url']).json()\n"
    archive = zip_of(("plugin.json", json.dumps({**MANIFEST, "entrypoint": "plugin.py"})), ("plugin.py", source))
    error = assert_validation_error(upload(api, archive), "plugin.py", "'requests'")
    assert "standard library" in error["message"]
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_single_source_without_entrypoint_takes_that_module(api):
    response = api.post("/plugins", {
        "source": SimpleUploadedFile("echo.py", b"def echo(params, ctx):\n    return params\n"),
        "manifest": json.dumps(MANIFEST),
    }, format="multipart")
    assert response.status_code == 201, response.content
    version = PluginVersion.objects.get(plugin__slug="echo")
    assert version.manifest["entrypoint"] == "plugin.py"


@pytest.mark.django_db
def test_an_archive_of_one_module_without_entrypoint_takes_that_module(api):
    response = upload(api, zip_of(("plugin.json", json.dumps(MANIFEST)), ("main.py", "def echo(params, ctx):\n    return 1\n")))
    assert response.status_code == 201, response.content
    assert PluginVersion.objects.get(plugin__slug="echo").manifest["entrypoint"] == "main.py"


@pytest.mark.django_db
def test_several_modules_without_entrypoint_is_refused(api):
    archive = zip_of(("plugin.json", json.dumps(MANIFEST)), ("a.py", "def echo(p, c):\n    return 1\n"), ("b.py", ""))
    assert_validation_error(upload(api, archive), "entrypoint", "required")
    assert_nothing_stored()
