"""The OpenAPI schema at /schema covers every endpoint with examples and the
error envelope; /docs serves Swagger UI from local static files and renders."""

import re
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from tests.chromium import dump_dom, png_size, requires_chromium, screenshot

# Not API endpoints: the admin, and the schema and docs themselves.
NOT_IN_SCHEMA = ("admin/", "schema", "docs")
ENVELOPE = "#/components/schemas/ErrorEnvelope"


def endpoints(patterns=None, prefix=""):
    """Every URL of the project as an OpenAPI path: /plugins/{plugin_id}."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if route.startswith(NOT_IN_SCHEMA):
            continue
        if isinstance(pattern, URLResolver):
            yield from endpoints(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    # --validate checks it against the OpenAPI 3 meta-schema; --fail-on-warn
    # refuses any endpoint or field the generator could not describe.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_endpoint_is_in_the_schema(schema):
    expected = set(endpoints())
    assert {"/execute", "/executions/{execution_id}", "/health", "/metrics", "/stats", "/events"} <= expected
    assert expected == set(schema["paths"])


def test_every_operation_has_examples_and_documents_the_error_envelope(schema):
    for name, operation in operations(schema):
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, name
        # /health answers 503 with its checks, not with an error (docs/api.md).
        errors = {code: r for code, r in responses.items() if code[0] in "45" and (name, code) != ("GET /health", "503")}
        assert errors, name
        for code, response in errors.items():
            content = response["content"]["application/json"]
            assert content["schema"]["$ref"] == ENVELOPE, (name, code)
            for example in content["examples"].values():
                assert example["value"]["success"] is False and example["value"]["error"]["type"], (name, code)
        has_success_example = any(
            content.get("examples") for code in success for content in responses[code].get("content", {}).values()
        )
        assert has_success_example or success == ["204"], f"{name} has no example of its answer"
        assert operation.get("summary"), name


def test_the_envelope_and_the_error_types(schema):
    components = schema["components"]["schemas"]
    envelope = components["ErrorEnvelope"]
    assert set(envelope["properties"]) == {"success", "executionId", "error"}
    assert set(envelope["required"]) == {"success", "error"}
    assert {"QUOTA_EXCEEDED", "TIMEOUT", "SANDBOX_VIOLATION"} <= set(components["ErrorTypeEnum"]["enum"])
    execute = schema["paths"]["/execute"]["post"]
    assert "async" in components["ExecuteRequestDoc"]["properties"]
    assert set(execute["responses"]) >= {"200", "202", "400", "401", "403", "404", "409", "429", "500", "502", "503", "504"}
    too_many = execute["responses"]["429"]["content"]["application/json"]["examples"].values()
    assert {example["value"]["error"]["type"] for example in too_many} == {"QUOTA_EXCEEDED", "CONCURRENCY_LIMIT"}
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "security" not in schema["paths"]["/health"]["get"]


@pytest.mark.django_db
def test_schema_endpoint_serves_yaml_and_json():
    assert APIClient().get("/schema").content.startswith(b"openapi: 3")
    assert APIClient().get("/schema?format=json").json()["info"]["title"] == "Plugin execution engine"


@pytest.mark.django_db
def test_docs_page_uses_only_local_static_files():
    html = APIClient().get("/docs").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-dist/swagger-ui-bundle.js" in asset for asset in assets)
    assert all(asset.startswith("/static/") for asset in assets if asset.endswith((".js", ".css")))
    assert "//cdn" not in html and "unpkg" not in html and "jsdelivr" not in html


@requires_chromium
def test_docs_render_in_a_browser(live_server, settings):
    # The docs fetch the schema from the server and build the page in the browser.
    url = f"{live_server.url}/docs"
    dom = dump_dom(url)
    for operation in ("/execute", "/events", "/stats", "/metrics"):
        assert f'data-path="{operation}"' in dom
    shot = screenshot(url, Path(settings.VAR_DIR) / "screenshots" / "docs.png", width=1280, height=1400)
    assert png_size(shot) == (1280, 1400) and shot.stat().st_size > 30_000
