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

# Not API endpoints: the admin, and the schema and docs themselves (and /, a redirect to the docs).
NOT_IN_SCHEMA = ("admin/", "schema", "docs")
ENVELOPE = "#/components/schemas/ErrorEnvelope"


def endpoints(patterns=None, prefix=""):
    """Every URL of the project as an OpenAPI path: /plugins/{plugin_id}."""
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        route = prefix + str(pattern.pattern)
        if route.startswith(NOT_IN_SCHEMA) or (route == "" and isinstance(pattern, URLPattern)):
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
    def documented(status):
        examples = execute["responses"][status]["content"]["application/json"]["examples"].values()
        return {example["value"]["error"]["type"] for example in examples}

    assert documented("429") == {"QUOTA_EXCEEDED", "CONCURRENCY_LIMIT"}
    # The designed 5xx a contract run meets (tests/contract/schemathesis_hooks.py).
    assert "PLUGIN_ERROR" in documented("500") and "CIRCUIT_OPEN" in documented("503")
    assert "TIMEOUT" in documented("504")
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "security" not in schema["paths"]["/health"]["get"]


def test_links_lead_from_an_id_to_the_operations_on_it(schema):
    operation_ids = {operation["operationId"] for _, operation in operations(schema)}

    def links(path, method, status):
        return schema["paths"][path][method]["responses"][status]["links"]

    for source in (links("/plugins", "get", "200"), links("/plugins/{plugin_id}", "get", "200"),
                   links("/plugins", "post", "201")):
        assert {link["operationId"] for link in source.values()} == {
            "plugins_retrieve", "plugins_activate_create", "plugins_enable_create", "plugins_disable_create",
            "cache_invalidate_create"}
    assert links("/plugins", "get", "200")["GetPlugin"]["parameters"] == {"plugin_id": "$response.body#/plugins/0/id"}
    assert links("/execute", "post", "202")["GetExecution"]["parameters"] == {
        "execution_id": "$response.body#/executionId"}
    assert {link["operationId"] for link in links("/secrets/{name}", "put", "201").values()} == {
        "secrets_destroy", "secrets_plugins_update"}
    every_link = [link for _, operation in operations(schema) for response in operation["responses"].values()
                  for link in response.get("links", {}).values()]
    assert {link["operationId"] for link in every_link} <= operation_ids


def test_the_schema_says_what_the_server_does(schema):
    components = schema["components"]["schemas"]
    # Null when there is none: a public plugin, a service-wide event.
    assert components["Plugin"]["properties"]["owner"]["nullable"] is True
    assert components["Event"]["properties"]["organizationId"]["nullable"] is True
    # Bodies refuse what they do not declare, and blank strings where a value is needed.
    execute = components["ExecuteRequestDoc"]
    assert execute["additionalProperties"] is False
    assert execute["properties"]["organizationId"]["minLength"] == 1
    assert "minLength" not in execute["properties"]["actorId"]
    assert components["SecretValue"]["properties"]["value"]["minLength"] == 4
    assert components["PluginUpload"]["properties"]["archive"] == {"type": "string", "format": "binary"}
    limit = next(p for p in schema["paths"]["/events"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1}
    # A failed run's record is still a record: 200 with its status and error.
    record = components["ExecutionRecord"]
    assert {"error", "timeout"} <= set(components[record["properties"]["status"]["$ref"].split("/")[-1]]["enum"])
    assert set(schema["paths"]["/executions/{execution_id}"]["get"]["responses"]) == {"200", "401", "404", "429", "500", "503"}


@pytest.mark.django_db
def test_root_redirects_to_the_docs_and_a_trailing_slash_is_tolerated_on_reads(api):
    root = APIClient().get("/")
    assert root.status_code == 302 and root["Location"] == "/docs"
    assert APIClient().get("/docs/").status_code == 200
    assert api.get("/plugins/").json() == api.get("/plugins").json()
    assert api.get("/secrets//").status_code == 200
    # A write to a wrong path is still told so.
    response = api.post("/execute/", {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["type"] == "NOT_FOUND"


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
