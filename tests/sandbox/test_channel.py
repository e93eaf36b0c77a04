"""Hostile plugins that abuse the channel to the host: floods of raw bytes and
of egress requests, forged and malformed frames, a forged answer followed by a
crash or a busy loop, forged resource usage, a closed or parked channel. The
host never raises, never hangs, never takes a forged answer over what it saw.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import json

import pytest

from tests.sandbox.helpers import (
    BENIGN,
    SPIN,
    PeakRss,
    host_intact,
    plugin,
    run_on,
    utf8_clean,
)

pytestmark = pytest.mark.slow

# -- floods ---------------------------------------------------------------------------------


def test_channel_flood_with_raw_bytes(sandbox, run):
    with PeakRss() as rss:
        result = run(
            """
def attack(params, ctx):
    errors = []
    for fd in range(3, 20):
        try:
            _os.write(fd, b"x" * 10 ** 7)
        except OSError as error:
            errors.append(f"{fd}: {error}")
    return errors
""",
            timeout_ms=1500,
        )
    assert result.error_type in {"OUTPUT_LIMIT_EXCEEDED", "PLUGIN_ERROR", "WORKER_CRASHED"}, result
    assert rss.growth_mb < 48, f"host grew by {rss.growth_mb:.0f} MiB"
    host_intact(sandbox, result)


def test_egress_request_flood_without_reading_replies(sandbox, run):
    """The child sends `http` frames as fast as it can and never reads the
    replies: what the host buffers for it must stay bounded."""
    handled = []

    def egress(frame):
        handled.append(1)
        return {"ok": False, "kind": "denied", "message": "network access is not enabled"}

    with PeakRss() as rss:
        result = run(
            """
def attack(params, ctx):
    frame = _json.dumps({"op": "http", "method": "GET", "url": "http://x/"}).encode()
    burst = (_struct.pack("!I", len(frame)) + frame) * 1000
    chan = channel(ctx)
    while True:
        chan.sendall(burst)
""",
            timeout_ms=2000,
            egress_handler=egress,
        )
    assert result.status in ("error", "timeout"), result
    assert rss.growth_mb < 16, f"host buffered {rss.growth_mb:.0f} MiB of replies for {len(handled)} unread requests in 2 s"
    host_intact(sandbox, result)


# -- forged and malformed frames -------------------------------------------------------------


FORGED_FRAMES = {
    # A result frame whose resultJson decodes (on the host) to a lone surrogate.
    "surrogate_result_json": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": '"a\\ud800"', "logs": []})
    _os._exit(0)
""",
    # An error frame whose message and logs carry lone surrogates and NULs.
    "surrogate_message_and_logs": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "error", "errorType": "PLUGIN_ERROR",
                          "message": "m\\ud800", "traceback": "t\\udfff", "logs": ["x\\udfff", "nul\\x00"]})
    _os._exit(0)
""",
    # A frame of deeply nested JSON (200 kB, under the frame cap).
    "nested_json_frame": """
import time
def attack(params, ctx):
    send_raw_frame(ctx, ("[" * 100000 + "]" * 100000).encode())
    time.sleep(0.3)
    return "after"
""",
    # A result whose resultJson is deeply nested JSON (200 kB, under the result cap).
    "nested_result_json": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": "[" * 100000 + "]" * 100000, "logs": []})
    _os._exit(0)
""",
    # Frames that are valid JSON but not the shapes the host expects.
    "wrong_shapes": """
def attack(params, ctx):
    for message in ([1, 2], "text", 7, None, {"op": "http"}, {"op": "result", "status": "success", "resultJson": 5, "logs": "nope"},
                    {"op": "result", "status": "success", "resultJson": "{\\"ok\\": 1}", "logs": [{"a": 1}, [2], None], "logsTruncated": "yes"}):
        send_json_frame(ctx, message)
    _os._exit(0)
""",
}


@pytest.mark.parametrize("kind", sorted(FORGED_FRAMES))
def test_forged_frames_do_not_break_the_host(sandbox, fresh_client, kind):
    try:
        result = run_on(fresh_client, plugin(FORGED_FRAMES[kind]), timeout_ms=2000)
    except Exception as error:  # the host interface must never raise for what a plugin does
        pytest.fail(f"ForkServerClient.run raised {type(error).__name__}: {str(error)[:200]}")
    assert result.status in ("success", "error"), result
    if result.status == "success":
        json.loads(result.result_json)
    assert utf8_clean(result) == [], f"fields with lone surrogates reached the host: {utf8_clean(result)}"
    # The client must still report the *next* runs correctly (no stale report).
    follow = run_on(fresh_client, BENIGN, params={"n": 1})
    assert follow.status == "success" and follow.result == {"ok": True, "echo": {"n": 1}}, follow
    slow = run_on(fresh_client, SPIN, timeout_ms=500)
    assert slow.error_type == "TIMEOUT", slow
    after = run_on(fresh_client, BENIGN, params={"n": 2})
    assert after.status == "success" and after.result == {"ok": True, "echo": {"n": 2}}, after
    host_intact(sandbox, after)


FAKE_RESULT_THEN = {
    # A plugin may answer whatever it likes; what it does *after* a forged
    # answer must not turn into a host-side success that hides a crash the
    # host saw, nor leave anything running.
    "segfault": ("_ctypes.string_at(0)", {"WORKER_CRASHED"}),
    "abort": ("_os.abort()", {"WORKER_CRASHED"}),
    "exit_nonzero": ("_os._exit(7)", {"WORKER_CRASHED"}),
}


@pytest.mark.parametrize("kind", sorted(FAKE_RESULT_THEN))
def test_fake_result_frame_then_crash(sandbox, run, kind):
    ending, expected = FAKE_RESULT_THEN[kind]
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '{\"fake\": true}', 'logs': ['forged']})\n"
        f"    {ending}\n",
        timeout_ms=1000,
    )
    # Contained either way: the crash is reported, or the forged answer (which
    # the plugin could have returned normally) is taken as its result.
    if result.status == "success":
        assert result.result == {"fake": True}, result
    else:
        assert result.error_type in expected, result
    assert result.elapsed < 1.0, result.elapsed
    host_intact(sandbox, result)


def test_fake_result_frame_then_run_past_the_deadline(sandbox, run):
    """A forged answer without closing the channel, then a busy loop: the
    child is killed at the deadline, and the run must be reported as a
    TIMEOUT, not as the forged success."""
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '{\"fake\": true}', 'logs': []})\n"
        "    while True:\n"
        "        pass\n",
        timeout_ms=1000,
    )
    assert result.error_type == "TIMEOUT", f"killed at the deadline but reported {result.status}: {result.result_json}"
    host_intact(sandbox, result)


def test_child_does_not_outlive_its_answer(sandbox, run):
    """Answer, shut the channel, keep running: the host may take the answer,
    but the child must not go on running (unaccounted) after the run is over."""
    result = run(
        "def attack(params, ctx):\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '\"early\"', 'logs': []})\n"
        "    channel(ctx).shutdown(_socket.SHUT_RDWR)\n"
        "    while True:\n"
        "        pass\n",
        timeout_ms=3000,
    )
    assert result.status in ("success", "error", "timeout")
    assert not result.leftovers, f"the child was still running 1 s after the host had its answer: {result.leftovers}"
    host_intact(sandbox, result)


def test_plugin_cannot_forge_its_resource_usage(sandbox, run):
    """cpu_ms / max_rss_bytes are what quotas and bills are based on: a plugin
    that burns CPU must not be able to report that it used none."""
    result = run(
        "import time\n"
        "def attack(params, ctx):\n"
        "    end = time.process_time() + 0.4\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "    send_json_frame(ctx, {'op': 'result', 'status': 'success', 'resultJson': '1', 'logs': [], 'usage': {'cpuMs': 0, 'maxRssBytes': 0}})\n"
        "    channel(ctx).shutdown(_socket.SHUT_RDWR)\n"
        "    _os._exit(0)\n",
    )
    assert result.status == "success", result
    assert result.cpu_ms >= 300, f"the host reported cpu_ms={result.cpu_ms} for a run that burned ~400 ms of CPU"
    assert result.max_rss_bytes > 0, "the host reported max_rss_bytes=0"
    host_intact(sandbox, result)


def test_channel_closed_then_loop(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    chan = channel(ctx)
    chan.shutdown(_socket.SHUT_RDWR)
    chan.close()
    while True:
        pass
""",
        timeout_ms=1000,
    )
    assert result.error_type in {"TIMEOUT", "WORKER_CRASHED"}, result
    assert result.elapsed < 2.5, result.elapsed
    host_intact(sandbox, result)


def test_channel_kept_alive_by_fd_in_flight(sandbox, run):
    """The child parks its own channel descriptor in an unreachable socket's
    queue (a reference cycle) before exiting: the host must not hang on it."""
    result = run(
        """
def attack(params, ctx):
    chan = channel(ctx)
    left, right = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    _socket.send_fds(left, [b"x"], [chan.fileno(), right.fileno(), left.fileno()])
    _socket.send_fds(right, [b"y"], [chan.fileno(), left.fileno(), right.fileno()])
    left.close()
    right.close()
    return "parked"
""",
        timeout_ms=1000,
    )
    assert result.status == "success" and result.result == "parked", result
    assert result.elapsed < 2.0, result.elapsed
    host_intact(sandbox, result)
