"""JavaScript plugins (`runtime="node"`) through the real sandbox: what works
(handlers sync and async, ctx, modules, scratch space, egress through the
broker) and how a run ends exactly as a Python run does (TIMEOUT,
MEMORY_LIMIT_EXCEEDED, WORKER_CRASHED, OUTPUT_LIMIT_EXCEEDED, PLUGIN_ERROR,
VALIDATION_ERROR).

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
import urllib.request
import uuid

import pytest

from sandbox import ALL_LAYERS, ForkServerClient, RunRequest, SandboxUnavailable
from tests.sandbox.helpers import UID_BASE, host_intact, make_request

pytestmark = pytest.mark.slow


def test_sync_and_async_handlers_return_their_results(sandbox, run_js):
    source = """
exports.add = (params, ctx) => ({ sum: params.a + params.b });
exports.later = async (params, ctx) => {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return { product: params.a * params.b };
};
"""
    added = run_js(source, params={"a": 2, "b": 3}, handler="add")
    assert added.status == "success" and added.result == {"sum": 5}, added
    later = run_js(source, params={"a": 2, "b": 3}, handler="later")
    assert later.status == "success" and later.result == {"product": 6}, later
    host_intact(sandbox, later)


def test_ctx_offers_what_python_plugins_get(sandbox, run_js):
    result = run_js(
        """
const fs = require('fs');
const path = require('node:path');
const os = require('os');
exports.attack = async (params, ctx) => {
  ctx.log('from ctx.log', 1, true);
  console.log('from console.log %d', 7);
  process.stdout.write('from stdout\\n');
  const file = path.join(ctx.scratchDir, 'note.txt');
  fs.writeFileSync(file, 'kept in scratch');
  const frozen = Object.isFrozen(ctx) && Object.isFrozen(ctx.secrets);
  return {
    executionId: ctx.executionId, actorId: ctx.actorId, attempt: ctx.attempt,
    secret: ctx.secrets.API_KEY === 'k-123', scratch: ctx.scratchDir, tmpdir: os.tmpdir(),
    read: fs.readFileSync(file, 'utf8'), frozen, env: Object.keys(process.env),
  };
};
""",
        secrets={"API_KEY": "k-123"},
        actor_id="user-7",
        attempt=2,
    )
    assert result.status == "success", result
    assert result.result["actorId"] == "user-7" and result.result["attempt"] == 2
    assert result.result["secret"] is True and result.result["frozen"] is True
    assert result.result["scratch"] == "/scratch/run" == result.result["tmpdir"]
    assert result.result["read"] == "kept in scratch"
    assert result.result["env"] == ["TMPDIR"]
    assert result.logs == ["from ctx.log 1 true", "from console.log 7", "from stdout"]
    host_intact(sandbox, result)


def test_a_plugin_of_several_modules_and_json(sandbox):
    request = RunRequest(
        execution_id=str(uuid.uuid4()),
        modules={
            "index.js": "const { double } = require('./lib/math');\nconst data = require('./data.json');\n"
                        "const pad = require('left-pad');\n"
                        "exports.run = (params) => ({ value: double(params.n), name: data.name, padded: pad(7, 3) });\n",
            "lib/math.js": "exports.double = (n) => 2 * n;\n",
            "data.json": '{"name": "several"}',
            "node_modules/left-pad/package.json": '{"main": "lib/pad.js"}',
            "node_modules/left-pad/lib/pad.js": "module.exports = (s, n) => String(s).padStart(n, '0');\n",
        },
        entrypoint="index.js",
        handler="run",
        params={"n": 21},
        timeout_ms=3000,
        memory_bytes=128 << 20,
        runtime="node",
    )
    result = sandbox.a.run(request)
    assert result.status == "success" and result.result == {"value": 42, "name": "several", "padded": "007"}, result


def test_errors_are_plugin_errors_with_the_plugins_own_frames(run_js):
    result = run_js("exports.attack = () => { null.boom; };\n")
    assert result.error_type == "PLUGIN_ERROR" and result.message.startswith("TypeError:"), result
    assert "<plugin>/plugin.js" in result.traceback and "node_runtime" not in result.traceback
    rejected = run_js("exports.attack = async () => { throw new RangeError('no'); };\n")
    assert rejected.error_type == "PLUGIN_ERROR" and rejected.message == "RangeError: no", rejected
    missing = run_js("exports.other = () => 1;\n")
    assert missing.error_type == "PLUGIN_ERROR" and "handler 'attack' is not exported" in missing.message, missing
    unsettled = run_js("exports.attack = () => new Promise(() => {});\n")
    assert unsettled.error_type == "PLUGIN_ERROR" and "never settled" in unsettled.message, unsettled
    not_json = run_js("exports.attack = () => ({ big: 10n });\n")
    assert not_json.error_type == "PLUGIN_ERROR" and "not JSON-serialisable" in not_json.message, not_json


def test_reject_is_a_validation_error(run_js):
    result = run_js("exports.attack = (params, ctx) => ctx.reject('city is required', { field: 'city' });\n")
    assert result.error_type == "VALIDATION_ERROR" and result.message == "city is required", result
    assert result.details == {"field": "city"}


def test_timeout_sync_loop_and_promise_loop(sandbox, run_js):
    for source in ("exports.attack = () => { for (;;) {} };\n",
                   "exports.attack = async () => { await null; for (;;) {} };\n",
                   "exports.attack = async () => { for (;;) await null; };\n"):
        result = run_js(source, timeout_ms=800)
        assert result.status == "timeout" and result.error_type == "TIMEOUT", (source, result)
        assert result.elapsed < 5
        host_intact(sandbox, result)


@pytest.mark.parametrize("bomb", [
    # The V8 heap: V8 gives up at its heap limit (a share of the run's limit).
    "const hoard = []; for (;;) hoard.push({ index: hoard.length, text: 'x'.repeat(64) + hoard.length });",
    # ArrayBuffers live outside the V8 heap: the memory cgroup is their wall.
    "const hoard = []; for (;;) { const b = new Uint8Array(1 << 20); b.fill(1); hoard.push(b); }",
    "const hoard = []; for (;;) { hoard.push(Buffer.alloc(4 << 20, 1)); }",
])
def test_memory_bombs_are_memory_limit_exceeded(sandbox, run_js, bomb):
    result = run_js(f"exports.attack = () => {{ {bomb} }};\n", memory_mb=96, timeout_ms=10000)
    assert result.error_type == "MEMORY_LIMIT_EXCEEDED", result
    host_intact(sandbox, result)


@pytest.mark.parametrize("crash", ["process.abort()", "process.kill(process.pid, 'SIGSEGV')", "process.exit(3)",
                                   "process.reallyExit(0)"])
def test_a_crash_is_worker_crashed(sandbox, run_js, crash):
    result = run_js(f"exports.attack = () => {{ {crash}; }};\n")
    assert result.error_type == "WORKER_CRASHED", result
    host_intact(sandbox, result)


def test_huge_output_is_capped(sandbox, run_js):
    result = run_js("exports.attack = () => 'x'.repeat(3 << 20);\n")
    assert result.error_type == "OUTPUT_LIMIT_EXCEEDED", result
    logs = run_js("exports.attack = () => { for (let i = 0; i < 100000; i++) console.log('line ' + 'y'.repeat(100)); return 1; };\n")
    assert logs.status == "success" and logs.logs_truncated, logs
    assert sum(len(line) for line in logs.logs) <= 64 * 1024
    host_intact(sandbox, logs)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"echo": ' + body + b"}")

    def log_message(self, *args):
        pass


def test_ctx_http_fetch_goes_through_the_egress_handler(sandbox, run_js):
    """The handler is the broker's interface: here it forwards to a real
    HTTP server on 127.0.0.1, as the service's egress gateway would."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen = []

    def broker(frame):
        seen.append(frame)
        if "allowed.test" not in frame["url"]:
            return {"ok": False, "kind": "denied", "message": "domain not allowed"}
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/", method=frame["method"],
                                         data=base64.b64decode(frame["body"]), headers=frame["headers"])
        with urllib.request.urlopen(request, timeout=5) as reply:
            return {"ok": True, "status": reply.status, "headers": dict(reply.headers), "url": frame["url"],
                    "body": base64.b64encode(reply.read()).decode()}

    try:
        result = run_js(
            """
exports.attack = async (params, ctx) => {
  const reply = await ctx.http.fetch('https://allowed.test/x', { method: 'POST', body: { n: 1 } });
  let denied = null;
  try { await ctx.http.get('https://elsewhere.test/'); } catch (error) { denied = error.name; }
  return { status: reply.status, ok: reply.ok, body: await reply.json(), denied, globalFetch: typeof fetch };
};
""",
            egress_handler=broker,
        )
    finally:
        server.shutdown()
    assert result.status == "success", result
    assert result.result == {"status": 201, "ok": True, "body": {"echo": {"n": 1}}, "denied": "EgressDenied",
                             "globalFetch": "undefined"}
    assert seen[0]["headers"]["Content-Type"] == "application/json"
    uncaught = run_js("exports.attack = async (params, ctx) => ctx.http.get('https://elsewhere.test/');\n")
    assert uncaught.error_type == "SANDBOX_VIOLATION", uncaught


def test_first_node_run_starts_node_and_later_ones_find_it_ready(sandbox, fresh_client):
    """The first Node run of a slot waits for Node to start; later ones
    take the spare started after the previous run."""
    timings = []
    for _ in range(4):
        request = RunRequest(execution_id=str(uuid.uuid4()), modules={"plugin.js": "exports.a = () => 1;\n"},
                             entrypoint="plugin.js", handler="a", params={}, timeout_ms=3000,
                             memory_bytes=128 << 20, runtime="node")
        started = time.monotonic()
        result = fresh_client.run(request)
        timings.append(time.monotonic() - started)
        assert result.status == "success", result
        time.sleep(0.5)  # time for the next spare to start
    assert min(timings[1:]) < timings[0], timings


def test_without_node_javascript_runs_are_refused_and_python_runs_go_on(sandbox):
    """Fail closed: a host without Node (or without a layer Node needs)
    refuses JavaScript runs; Python runs are not affected."""
    client = ForkServerClient(lock_dir=sandbox.lock_dir, uid_base=UID_BASE, required_layers=list(ALL_LAYERS),
                              node_path="/nonexistent/node")
    try:
        client.ensure_started()
        assert client.node_state == {"available": False, "reason": "no Node.js binary on this host"}
        with pytest.raises(SandboxUnavailable, match="JavaScript plugins cannot run here"):
            client.run(make_request("exports.attack = () => 1;\n", runtime="node"))
        python = client.run(make_request("def attack(params, ctx):\n    return 1\n"))
        assert python.status == "success" and python.result == 1, python
    finally:
        client.close()
