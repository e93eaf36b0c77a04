"""Finding 3: an egress refusal's audit event recorded the method, the host
and the reason as the child sent them, before they were checked: megabytes
per event, 50 events per run, and a NUL or a lone surrogate, which
PostgreSQL refuses, turned the run into WORKER_CRASHED.

A hostile plugin writes its own frames on the channel `ctx.http` uses (JSON
escapes carry NULs and lone surrogates the child's own encoder would not).
The run ends normally, every request refused, and each event is small and
clean."""

import json

import pytest

from audit.models import AuditEvent
from tests.factories import install_source

HOSTILE = r'''
import json
import struct

MEGABYTE = 1 << 20


def _ask(sock, frame):
    data = json.dumps(frame).encode()  # ensure_ascii: a lone surrogate travels as \udXXX
    sock.sendall(struct.pack("!I", len(data)) + data)
    header = b""
    while len(header) < 4:
        header += sock.recv(4 - len(header))
    (size,) = struct.unpack("!I", header)
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return json.loads(body)


def attack(params, ctx):
    # Not on the allowlist: should a frame pass every other check, it is
    # still refused before any DNS query.
    api = "http://elsewhere.example/"
    frames = [
        {"method": "A" * MEGABYTE, "url": api},
        {"method": "GET\x00", "url": api},
        {"method": "\ud800GET", "url": api},
        {"method": {"nested": ["x" * 1000] * 100}, "url": api},
        {"method": "GET", "url": "http://" + "a" * MEGABYTE + ".example.com/"},
        {"method": "GET", "url": "http://" + "b" * 200 + "." * 3000 + "/"},
        {"method": "GET", "url": "http://api.exa\x00mple.com/"},
        {"method": "GET", "url": "http://\udfffapi.example.com/"},
        {"method": "GET", "url": "http://" + "\ud800" * 100000 + "/"},
        {"method": "GET", "url": ["http://api.example.com/"] * 1000},
        {"method": "GET", "url": api, "headers": {"X-Big": "v" * MEGABYTE}},
        {"method": "GET", "url": api, "headers": {"X-Nul": "a\x00b", "X-" + "n" * 300: "1"}},
        {"method": "GET", "url": api, "headers": {"X-Sur\ud800": "\udfff"}},
        {"method": "POST", "url": api, "body": ["x" * 1000] * 1000},
        {"method": "POST", "url": api, "body": "\ud800" * 100000},
        {"method": "GET", "url": "http://not-allowed.example/"},
    ]
    replies = [_ask(ctx.http._channel, dict(frame, op="http")) for frame in frames]
    return {"sent": len(frames), "refused": [reply.get("ok") is False for reply in replies]}
'''

MAX_EVENT_BYTES = 2048


def lone_surrogates_or_nul(value, path="metadata"):
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in
                lone_surrogates_or_nul(key, path) + lone_surrogates_or_nul(item, f"{path}.{key!r}")]
    if isinstance(value, list):
        return [bad for item in value for bad in lone_surrogates_or_nul(item, path)]
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return [path]
        return [path] if "\x00" in value else []
    return []


@pytest.mark.slow
def test_hostile_egress_frames_leave_small_clean_events(live, api):
    install_source("hostile-egress", HOSTILE, {"attack": "attack"}, network={"allowedDomains": ["api.example.com"]})
    response = api.post("/execute", {"pluginId": "hostile-egress", "actionName": "attack", "params": {}}, format="json")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "success" and body["result"]["refused"] == [True] * body["result"]["sent"], body

    events = list(AuditEvent.objects.filter(type="egress_request").order_by("timestamp", "pk"))
    assert len(events) == body["result"]["sent"]
    for event in events:
        assert event.metadata["allowed"] is False
        assert lone_surrogates_or_nul(event.metadata) == [], event.metadata
        size = len(json.dumps(event.metadata).encode())
        assert size <= MAX_EVENT_BYTES, f"an event of {size} bytes: {json.dumps(event.metadata)[:300]}…"
    # What was checked is recorded as it is.
    assert events[-1].metadata["method"] == "GET" and events[-1].metadata["host"] == "not-allowed.example"
