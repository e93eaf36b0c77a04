"""Finding 9: a run's logs are capped in lines as well as bytes, and what a
run leaves behind is redacted before it is cut, so that no cut (the child's
or the host's) keeps a piece of a secret that redaction would no longer
recognise: in its logs, its error message or its traceback."""

import pytest
from django.conf import settings

from executions.models import Execution, ExecutionAttempt
from tests.factories import install_source

pytestmark = pytest.mark.slow

PRINTS_EMPTY_LINES = """
def flood(params, ctx):
    print("\\n" * params["lines"])
    return {"ok": True}
"""

# Each cut falls inside the secret: the log line is cut at the run's log
# cap, the message where the child caps it, the traceback where the child
# keeps only its end.
LEAKS_ACROSS_CUTS = """
def leak(params, ctx):
    secret = ctx.secrets["TOKEN"]
    print("x" * params["logFiller"] + secret)
    raise ValueError("m" * params["messageFiller"] + secret + "-" + secret + "t" * params["tracebackFiller"])
"""

SECRET = "Zq7kV9mXw2pLr5tB"
LOG_CAP_BYTES = 64 * 1024
CHILD_MESSAGE_CHARS = 2000
CHILD_TRACEBACK_CHARS = 8192
KEPT = 6  # characters of the secret on the kept side of each cut


def execute(api, plugin, action, params, **extra):
    return api.post("/execute", {"pluginId": plugin, "actionName": action, "params": params, **extra}, format="json")


def test_a_million_empty_lines_keep_at_most_the_line_cap(live, api):
    install_source("flood", PRINTS_EMPTY_LINES, {"flood": "flood"})
    response = execute(api, "flood", "flood", {"lines": 10**6})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["result"] == {"ok": True}
    assert 0 < len(body["logs"]) <= settings.MAX_LOG_LINES and body["logsTruncated"] is True
    execution = Execution.objects.get(pk=body["executionId"])
    assert len(execution.logs) <= settings.MAX_LOG_LINES and execution.logs_truncated is True


def test_no_piece_of_a_secret_survives_a_cut(live, api):
    install_source("leaky", LEAKS_ACROSS_CUTS, {"leak": "leak"}, secrets=["TOKEN"])
    params = {
        "logFiller": LOG_CAP_BYTES - KEPT,
        "messageFiller": CHILD_MESSAGE_CHARS - len("ValueError: ") - KEPT,
        # The traceback ends with the message and a newline.
        "tracebackFiller": CHILD_TRACEBACK_CHARS - 1 - (len(SECRET) - KEPT),
    }
    response = execute(api, "leaky", "leak", params, secrets={"TOKEN": SECRET})
    assert response.status_code == 500, response.json()
    body = response.json()
    assert body["error"]["type"] == "PLUGIN_ERROR" and body["logsTruncated"] is True
    execution = Execution.objects.get(pk=body["executionId"])
    # The cuts are where this test means them to be.
    assert execution.logs[0].startswith("x" * (LOG_CAP_BYTES - KEPT))
    assert execution.error_message.startswith("ValueError: mmm") and len(execution.error_message) >= CHILD_MESSAGE_CHARS - KEPT
    assert execution.error_traceback.rstrip().endswith("t" * 100)

    left_behind = {
        "response": response.content.decode(),
        "logs": "\n".join(execution.logs),
        "message": execution.error_message,
        "traceback": execution.error_traceback,
        "attempts": "\n".join(ExecutionAttempt.objects.filter(execution=execution).values_list("error_message", flat=True)),
    }
    pieces = {SECRET[start : start + 4] for start in range(len(SECRET) - 3)}
    found = {where: sorted(piece for piece in pieces if piece.lower() in text.lower()) for where, text in left_behind.items()}
    assert not any(found.values()), f"pieces of the secret left behind: {found}"
