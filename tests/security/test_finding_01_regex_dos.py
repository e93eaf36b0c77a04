"""Finding 1: a params schema's regexes ran on Python's backtracking `re`, in
the web process. An organization uploads a private plugin whose schema holds
^(a|aa)+$ and one short param froze a web worker (and, through the GIL, the
other requests it was serving) for as long as it liked: at upload, where the
manifest's examples are checked, and on every POST /execute.

ADVERSARIAL is sized so that `re` needs about ten seconds for it (each
further 4 characters multiply that by about 7; 60 take hours); RE2, which
the schemas now run on, takes microseconds whatever its length.
"""

import http.server
import json
import threading
import time

import pytest
from django.db import connection

from plugins.models import PluginVersion
from tests.plugins.helpers import SOURCE, assert_nothing_stored, assert_validation_error, upload, zip_of

CATASTROPHIC = "^(a|aa)+$"
ADVERSARIAL = "a" * 40 + "b"
GENEROUS_SECONDS = 1.0


def plugin_with(params, examples=(), name="redos"):
    action = {"handler": "echo", "params": params, "examples": [{"params": example} for example in examples]}
    manifest = {"name": name, "version": "1.0.0", "entrypoint": "plugin.py", "actions": {"echo": action}}
    return zip_of(("plugin.json", json.dumps(manifest)), ("plugin.py", SOURCE))


def timed(call, *args, **kwargs):
    started = time.monotonic()
    response = call(*args, **kwargs)
    return response, time.monotonic() - started


def execute(client, plugin, params):
    return client.post("/execute", {"pluginId": plugin, "actionName": "echo", "params": params}, format="json")


def text_matching(pattern):
    return {"type": "object", "properties": {"text": {"type": "string", "pattern": pattern}}}


@pytest.mark.django_db
def test_a_catastrophic_pattern_costs_the_upload_nothing(api):
    response, elapsed = timed(upload, api, plugin_with(text_matching(CATASTROPHIC), [{"text": ADVERSARIAL}]))
    assert elapsed < GENEROUS_SECONDS
    assert_validation_error(response, "actions.echo.examples[0].params.text", "does not match")
    assert_nothing_stored()

    # RE2 runs it, correctly: a long example that matches is accepted as fast.
    response, elapsed = timed(upload, api, plugin_with(text_matching(CATASTROPHIC), [{"text": "a" * 50_000}]))
    assert response.status_code == 201, response.content
    assert elapsed < GENEROUS_SECONDS


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, value",
    [
        (text_matching(CATASTROPHIC), {"text": ADVERSARIAL}),
        ({"type": "object", "propertyNames": {"pattern": CATASTROPHIC}}, {ADVERSARIAL: 1}),
        ({"type": "object", "patternProperties": {CATASTROPHIC: {"type": "integer"}}}, {ADVERSARIAL: 1, "aa": "x"}),
        ({"type": "object", "patternProperties": {CATASTROPHIC: {}}, "additionalProperties": False}, {ADVERSARIAL: 1}),
    ],
    ids=["pattern", "propertyNames", "patternProperties", "additionalProperties"],
)
def test_a_catastrophic_pattern_costs_execute_nothing(api, params, value):
    assert upload(api, plugin_with(params)).status_code == 201
    response, elapsed = timed(execute, api, "redos", value)
    assert elapsed < GENEROUS_SECONDS
    assert response.status_code == 400, response.content
    assert response.json()["error"]["type"] == "VALIDATION_ERROR"


@pytest.mark.django_db
def test_a_lone_surrogate_in_a_param_is_matched_too(api):
    # JSON allows "\ud800", which RE2's UTF-8 cannot encode as it is.
    assert upload(api, plugin_with(text_matching(CATASTROPHIC))).status_code == 201
    body = json.dumps({"pluginId": "redos", "actionName": "echo", "params": {"text": ADVERSARIAL + "\ud800"}})
    response, elapsed = timed(api.post, "/execute", body, content_type="application/json")
    assert elapsed < GENEROUS_SECONDS
    assert_validation_error(response, "params.text", "does not match")


@pytest.mark.django_db(transaction=True)
def test_other_tenants_are_served_while_the_attack_is_checked(api, make_org, make_client):
    bystander = make_client(make_org("bystander"))
    assert upload(api, plugin_with(text_matching(CATASTROPHIC))).status_code == 201
    assert upload(bystander, plugin_with({"type": "object"}, name="ordinary")).status_code == 201

    attack = {}

    def attacker():
        try:
            attack["response"], attack["elapsed"] = timed(execute, api, "redos", {"text": ADVERSARIAL})
        finally:
            connection.close()

    thread = threading.Thread(target=attacker)
    thread.start()
    time.sleep(0.2)  # the attacker's request is being validated by now
    response, elapsed = timed(bystander.get, "/plugins/ordinary")
    thread.join()
    assert response.status_code == 200
    assert elapsed < GENEROUS_SECONDS
    assert attack["elapsed"] < GENEROUS_SECONDS and attack["response"].status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field",
    [
        (text_matching("^(a+)\\1$"), "actions.echo.params.properties.text.pattern"),
        (text_matching("^(?=a)(a|aa)+$"), "actions.echo.params.properties.text.pattern"),
        ({"patternProperties": {"^(?!x)": {}}}, "actions.echo.params.patternProperties.^(?!x)"),
        # A regex anywhere a $ref can reach counts, not only where the meta-schema expects one.
        ({"$defs": {"x": {"pattern": "(a)\\1"}}}, "actions.echo.params.$defs.x.pattern"),
    ],
    ids=["backreference", "lookahead", "patternProperties", "under $defs"],
)
def test_patterns_re2_cannot_run_are_refused_at_upload(api, params, field):
    error = assert_validation_error(upload(api, plugin_with(params)), field, "RE2")
    assert "backreferences or lookaround" in error["message"]
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field, words",
    [
        (
            {"properties": {"text": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": CATASTROPHIC}}},
            "actions.echo.params.properties.text.$schema",
            "JSON Schema 2020-12",
        ),
        (
            {"unevaluatedProperties": False, "allOf": [{"patternProperties": {CATASTROPHIC: {}}}]},
            "actions.echo.params.unevaluatedProperties",
            "patternProperties",
        ),
    ],
    ids=["dialect of a subschema", "unevaluatedProperties with patternProperties"],
)
def test_schemas_jsonschema_would_check_with_re_are_refused_at_upload(api, params, field, words):
    # jsonschema validates a subschema naming a dialect with its own class,
    # and finds what unevaluatedProperties leaves with `re`, out of reach of
    # the keywords that run on RE2.
    assert_validation_error(upload(api, plugin_with(params)), field, words)
    assert_nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        text_matching("^(a|aa)+(?!x)$"),
        {"properties": {"text": {"$schema": "http://json-schema.org/draft-07/schema#", "pattern": CATASTROPHIC}}},
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": ["object", "string"],
         "pattern": CATASTROPHIC, "properties": {"text": {"$ref": "#"}}},
    ],
    ids=["lookahead", "dialect of a subschema", "root dialect reached again through $ref"],
)
def test_versions_uploaded_before_the_check_cost_execute_nothing(api, params):
    assert upload(api, plugin_with({"type": "object"})).status_code == 201
    # As uploaded before schemas were checked for what `re` would run.
    version = PluginVersion.objects.get()
    version.manifest["actions"]["echo"]["params"] = params
    version.save(update_fields=["manifest"])

    response, elapsed = timed(execute, api, "redos", {"text": ADVERSARIAL})
    assert elapsed < GENEROUS_SECONDS
    assert response.status_code == 400, response.content
    assert response.json()["error"]["type"] == "VALIDATION_ERROR"


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        body = json.dumps({"type": "integer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def schema_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    _Counting.hits = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/schema.json"
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_a_remote_ref_is_never_fetched_by_the_web_process(api, schema_server):
    # jsonschema's default registry fetches a remote $ref: from inside the
    # service's network, past the sandbox's egress rules.
    params = {"type": "object", "properties": {"n": {"$ref": schema_server}}}
    assert_validation_error(upload(api, plugin_with(params, [{"n": 1}])), "actions.echo.params", "unresolvable $ref")

    assert upload(api, plugin_with({"type": "object"})).status_code == 201
    version = PluginVersion.objects.get()
    version.manifest["actions"]["echo"]["params"] = params
    version.save(update_fields=["manifest"])
    response = execute(api, "redos", {"n": 1})
    assert response.status_code == 400 and response.json()["error"]["type"] == "VALIDATION_ERROR"
    assert _Counting.hits == 0
