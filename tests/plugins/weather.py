"""A valid plugin ("weather": two actions, network, secrets, limits) and ways
to bend it, for the manifest and archive tests (pure logic, no database)."""

import copy
import io
import json
import warnings
import zipfile

import pytest

from plugins.manifest import ManifestError

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


def errors_of(call, *args, **kwargs):
    with pytest.raises(ManifestError) as caught:
        call(*args, **kwargs)
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


def write_plugin(folder, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files(**extra).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    return folder
