"""Every client mistake gets the error envelope with the right type and status."""

import logging

import pytest

from core import draining
from core.envelope import HTTP_STATUS, error_body
from core.errors import ERROR_TYPES, is_retryable


def execute(client, body, **kwargs):
    return client.post("/execute", body, format="json", **kwargs)


def assert_error(response, status, error_type):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["type"] == error_type
    assert body["error"]["retryable"] is is_retryable(error_type)
    assert body["error"]["message"]
    return body["error"]


def test_error_table_matches_design():
    def row(error_type):
        return HTTP_STATUS[error_type], ERROR_TYPES[error_type]

    assert set(HTTP_STATUS) == set(ERROR_TYPES), "every error type has an HTTP status"
    assert row("VALIDATION_ERROR") == (400, False)
    assert row("QUOTA_EXCEEDED") == (429, True)
    assert row("TIMEOUT") == (504, True)
    assert row("NETWORK_ERROR") == (502, True)
    assert row("WORKER_CRASHED") == (500, True)
    assert row("PLUGIN_DISABLED") == (409, False)
    assert error_body("TIMEOUT", "slow", execution_id="x") == {
        "success": False,
        "executionId": "x",
        "error": {"type": "TIMEOUT", "message": "slow", "retryable": True},
    }


@pytest.mark.django_db
def test_a_designed_5xx_is_logged_once_as_a_warning_not_as_an_internal_server_error(api, examples, monkeypatch,
                                                                                   caplog):
    monkeypatch.setattr(draining, "_draining", True)
    with caplog.at_level(logging.INFO):
        assert_error(execute(api, {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}}), 503,
                     "SHUTTING_DOWN")
    logged = [(record.name, record.levelname, record.getMessage()) for record in caplog.records
              if record.levelno >= logging.WARNING]
    assert logged == [("core.envelope", "WARNING",
                       "answered 503 SHUTTING_DOWN: this server is shutting down; try again shortly")]
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.django_db
def test_missing_and_bad_keys_are_401(api, examples):
    from rest_framework.test import APIClient

    anonymous = APIClient()
    assert_error(execute(anonymous, {"pluginId": "stats", "actionName": "describe"}), 401, "AUTHENTICATION_FAILED")
    for header in ("Bearer nope", "Basic abc", "Bearer pex_000000000000_wrong", f"Bearer {api.api_key}x"):
        anonymous.credentials(HTTP_AUTHORIZATION=header)
        error = assert_error(execute(anonymous, {"pluginId": "stats", "actionName": "describe"}), 401, "AUTHENTICATION_FAILED")
        assert "pex_" not in error["message"]


@pytest.mark.django_db
def test_revoked_key_is_401(api, examples):
    from quotas.models import ApiKey

    ApiKey.objects.get().revoke()
    assert_error(execute(api, {"pluginId": "stats", "actionName": "describe"}), 401, "AUTHENTICATION_FAILED")


@pytest.mark.django_db
def test_bad_json_is_validation_error(api):
    response = api.post("/execute", "{not json", content_type="application/json")
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"actionName": "describe"}, "pluginId"),
        ({"pluginId": "stats"}, "actionName"),
        ({"pluginId": "stats", "actionName": "describe", "params": [1, 2]}, "params"),
        ({"pluginId": "stats", "actionName": "describe", "timeout": "soon"}, "timeout"),
        ({"pluginId": "stats", "actionName": "describe", "timeout": 0}, "timeout"),
        ({"pluginId": "stats", "actionName": "describe", "timeout": 300001}, "timeout"),
        ({"pluginId": "stats", "actionName": "describe", "secrets": {"A": {"nested": 1}}}, "secrets.A"),
        ({"pluginId": "stats", "actionName": "describe", "async": "maybe"}, "async"),
        # Taken as the schema says: no property it does not declare, strings where it says string.
        ({"pluginId": "stats", "actionName": "describe", "timout": 500}, "timout"),
        ({"pluginId": "stats", "actionName": 7}, "actionName"),
        ({"pluginId": "stats", "actionName": "describe", "secrets": {"A": 5}}, "secrets.A"),
        ({"pluginId": "stats", "actionName": "describe", "organizationId": ""}, "organizationId"),
        # Booleans and integers as JSON has them: DRF would read 0 as false and "500" as 500.
        ({"pluginId": "stats", "actionName": "describe", "async": 0}, "async"),
        ({"pluginId": "stats", "actionName": "describe", "timeout": "500"}, "timeout"),
        ({"pluginId": "stats", "actionName": "describe", "timeout": 500.5}, "timeout"),
    ],
)
def test_wrong_fields_are_validation_errors_naming_the_field(api, examples, body, field):
    error = assert_error(execute(api, body), 400, "VALIDATION_ERROR")
    assert field in [detail["field"] for detail in error["details"]]


@pytest.mark.django_db
def test_array_body_is_validation_error(api):
    assert_error(execute(api, [1, 2]), 400, "VALIDATION_ERROR")


@pytest.mark.django_db
def test_params_failing_the_schema_name_the_param(api, examples):
    error = assert_error(
        execute(api, {"pluginId": "stats", "actionName": "describe", "params": {"values": ["x"]}}), 400, "VALIDATION_ERROR"
    )
    assert error["details"][0]["field"].startswith("params.values")


@pytest.mark.django_db
def test_a_huge_invalid_param_is_not_echoed_back(api, examples):
    huge = "x" * 1_000_000
    response = execute(api, {"pluginId": "stats", "actionName": "describe", "params": {"values": [huge]}})
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["details"][0]["field"].startswith("params.values")
    assert len(response.content) < 2_000, len(response.content)


@pytest.mark.django_db
def test_oversized_body_is_validation_error(api, settings):
    settings.MAX_REQUEST_BYTES = 1000
    body = {"pluginId": "stats", "actionName": "describe", "params": {"values": list(range(1000))}}
    error = assert_error(execute(api, body), 400, "VALIDATION_ERROR")
    assert "1000 bytes" in error["message"]


@pytest.mark.django_db
def test_unknown_plugin_action_and_disabled(api, examples):
    assert_error(execute(api, {"pluginId": "nope", "actionName": "x"}), 404, "PLUGIN_NOT_FOUND")
    error = assert_error(execute(api, {"pluginId": "stats", "actionName": "nope"}), 404, "ACTION_NOT_FOUND")
    assert "describe" in error["details"]["actions"]
    assert_error(execute(api, {"pluginId": "stats", "actionName": "describe", "version": "9.9.9"}), 404, "PLUGIN_NOT_FOUND")
    examples["stats"].plugin.__class__.objects.filter(slug="stats").update(enabled=False)
    assert_error(execute(api, {"pluginId": "stats", "actionName": "describe"}), 409, "PLUGIN_DISABLED")


@pytest.mark.django_db
def test_private_plugin_of_another_org_is_not_found(api, make_org):
    from tests.factories import install_source

    install_source("secret-tool", "def go(p, c):\n    return 1\n", {"go": "go"}, owner=make_org("other"))
    assert_error(execute(api, {"pluginId": "secret-tool", "actionName": "go"}), 404, "PLUGIN_NOT_FOUND")


@pytest.mark.django_db
def test_organization_id_must_match_the_key(api, examples):
    body = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}, "organizationId": "someone-else"}
    assert_error(execute(api, body), 403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_unknown_execution_and_endpoint(api):
    assert_error(api.get("/executions/00000000-0000-0000-0000-000000000000"), 404, "EXECUTION_NOT_FOUND")
    assert "'not-a-uuid'" in assert_error(api.get("/executions/not-a-uuid"), 404, "EXECUTION_NOT_FOUND")["message"]
    assert_error(api.get("/no-such-endpoint"), 404, "NOT_FOUND")
    assert_error(api.get("/execute"), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.django_db
def test_missing_required_layer_refuses_runs_naming_it(api, examples, monkeypatch):
    from executions import runner

    layers = dict(runner.host_layers())
    layers["landlock"] = (False, "kernel without Landlock")
    monkeypatch.setattr(runner, "host_layers", lambda: layers)
    error = assert_error(execute(api, {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}}), 503, "SANDBOX_UNAVAILABLE")
    assert "landlock" in error["message"] and error["details"]["missingLayers"] == ["landlock"]
    from executions.models import Execution

    assert not Execution.objects.exists()


@pytest.mark.django_db
def test_a_queued_run_is_its_own_place_in_the_queue(api, examples):
    from executions.models import Execution

    body = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}, "async": True,
            "secrets": {"TOKEN": "s3cret-value"}, "timeout": 5000}
    response = execute(api, body)
    assert response.status_code == 202
    execution = Execution.objects.get()
    assert execution.status == "queued" and execution.priority == "medium"  # the pro tier's priority
    assert abs((execution.start_deadline - execution.queued_at).total_seconds() - 15) < 0.5  # timeout + patience
    # The request's secrets wait with the run, sealed: never in clear.
    assert execution.sealed_secrets and "s3cret-value" not in execution.sealed_secrets


@pytest.mark.django_db
def test_a_queue_that_refuses_the_run_leaves_no_run_and_no_quota_used(api, examples, monkeypatch):
    from executions import submission
    from executions.models import Execution
    from quotas.models import DailyUsage

    def broken_queue(*args, **kwargs):
        raise ConnectionError("database went away")

    monkeypatch.setattr(submission, "enqueue", broken_queue)
    body = {"pluginId": "stats", "actionName": "describe", "params": {"values": [1]}, "async": True}
    assert_error(execute(api, body), 500, "INTERNAL_ERROR")
    assert not Execution.objects.exists()
    assert not DailyUsage.objects.filter(count__gt=0).exists()


@pytest.mark.django_db
def test_a_key_sent_without_its_scheme_is_told_the_scheme_is_missing(api):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=api.api_key)
    error = assert_error(client.get("/plugins"), 401, "AUTHENTICATION_FAILED")
    assert "Bearer" in error["message"]
    api.credentials(HTTP_AUTHORIZATION=f"bearer {api.api_key}")  # the scheme's case does not matter
    assert api.get("/plugins").status_code == 200
