"""Schemathesis's check for server errors, as this API means them: a 5xx is
a failure unless it is one of the designed answers of POST /execute that a
fuzzer's runs can meet, and its schema documents it there (status and
example). The configuration (schemathesis.toml beside this file) turns
schemathesis's own `not_a_server_error` off in favour of this one."""

import json

import schemathesis

# What running the example plugins with generated requests meets by design:
# a plugin raising on the params it was sent, its breaker opening after
# enough of those, and a run given a budget of a few milliseconds
# (`"timeout": 1` is schema-valid) ending as TIMEOUT.
DESIGNED_SERVER_ERRORS = {
    ("POST /execute", 500, "PLUGIN_ERROR"), ("POST /execute", 503, "CIRCUIT_OPEN"), ("POST /execute", 504, "TIMEOUT"),
}


def error_type(response):
    try:
        return json.loads(response.content)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None


def documented(operation, status, error):
    response = operation.definition.raw.get("responses", {}).get(str(status), {})
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return any(example.get("value", {}).get("error", {}).get("type") == error for example in examples.values())


@schemathesis.check
def not_an_undesigned_server_error(ctx, response, case):
    if response.status_code < 500:
        return None
    error = error_type(response)
    answer = (case.operation.label, response.status_code, error)
    if answer not in DESIGNED_SERVER_ERRORS:
        raise AssertionError(f"server error {response.status_code} {error or 'without the error envelope'}")
    if not documented(case.operation, response.status_code, error):
        raise AssertionError(f"{error} ({response.status_code}) is not documented for {case.operation.label}")
    return None
