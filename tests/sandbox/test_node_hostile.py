"""Hostile JavaScript plugins against the real sandbox: processes, files,
sockets, signals, threads, memory, Node's own back doors, prototype
pollution, state left for the next run and other organizations' secrets.

Each attack reports what it observed (the run succeeds and the test reads
the plugin's own account) or ends the way its limit says; then the host is
checked as for every Python attack (host_intact).

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from sandbox.child import confine
from tests.sandbox.helpers import TOKEN, host_intact, new_token

pytestmark = pytest.mark.slow

# Prepended to each attack: `attempt(fn)` returns what happened, never throws.
PRELUDE = """
const attempt = (fn) => {
  try {
    const value = fn();
    return { ok: true, value: value === undefined ? null : String(value).slice(0, 200) };
  } catch (error) {
    return { ok: false, error: String(error && (error.code || error.message || error)).slice(0, 200) };
  }
};
"""


def js(body):
    return PRELUDE + body


# -- processes ----------------------------------------------------------------------


def test_child_process_in_every_form(sandbox, run_js):
    result = run_js(js("""
exports.attack = async () => {
  const tries = {
    require: attempt(() => require('child_process').execSync('id')),
    requireNode: attempt(() => require('node:child_process').spawnSync('/bin/sh', ['-c', 'id']).status),
    cluster: attempt(() => require('cluster').fork()),
    binding: attempt(() => process.binding('spawn_sync').spawn({ file: '/bin/sh', args: ['sh'] })),
    linkedBinding: attempt(() => process._linkedBinding('spawn_sync')),
    getBuiltinModule: attempt(() => process.getBuiltinModule('child_process').execSync('id')),
    mainModule: attempt(() => process.mainModule.require('child_process')),
    moduleBuiltin: attempt(() => require('module').createRequire('/')('child_process')),
    dlopen: attempt(() => process.dlopen({ exports: {} }, '/usr/lib/x86_64-linux-gnu/libc.so.6')),
    internalBinding: attempt(() => internalBinding('spawn_sync')),
    internalTestBinding: attempt(() => require('internal/test/binding').internalBinding('spawn_sync')),
    constructorRequire: attempt(() => require.constructor('return process.mainModule.require')()('child_process')),
    errorStackFrames: attempt(() => {
      Error.prepareStackTrace = (error, frames) => frames.map((frame) => frame.getFunction && frame.getFunction());
      const functions = new Error().stack.filter(Boolean);
      Error.prepareStackTrace = undefined;
      const found = functions.find((fn) => fn.name === 'require' && fn('child_process'));
      if (!found) throw new Error('no frame gave away a require that loads child_process');
      return found;
    }),
  };
  try { await import('child_process'); tries.dynamicImport = { ok: true }; }
  catch (error) { tries.dynamicImport = { ok: false, error: String(error.code || error.message) }; }
  return tries;
};
"""))
    assert result.status == "success", result
    assert all(not outcome["ok"] for outcome in result.result.values()), {k: v for k, v in result.result.items() if v["ok"]}
    host_intact(sandbox, result)


def test_worker_thread_bomb(sandbox, run_js):
    result = run_js(js("""
exports.attack = () => ({
  worker: attempt(() => new (require('worker_threads').Worker)('for(;;){}', { eval: true })),
  inspector: attempt(() => require('inspector').open()),
  vm: attempt(() => require('vm').runInNewContext('1')),
});
"""))
    assert result.status == "success", result
    assert all(not outcome["ok"] for outcome in result.result.values()), result.result
    host_intact(sandbox, result)


def test_the_seccomp_filter_lets_node_be_executed_from_one_pointer_only():
    """The Node filter allows execve for the fork-server's own pointer to the
    Node binary's path: the same path at any other address is refused (so
    neither a plugin nor the dynamic loader, which Landlock must let execute,
    can start another program)."""
    node = os.path.realpath("/usr/bin/node")
    allowed = ctypes.create_string_buffer(node.encode())
    other = ctypes.create_string_buffer(node.encode())
    program, _ = confine.compile_seccomp_filter(runtime="node", exec_path_address=ctypes.addressof(allowed))
    pid = os.fork()
    if pid == 0:
        try:
            confine.prctl(confine.PR_SET_NO_NEW_PRIVS, 1)
            confine.load_seccomp(program)
            argv = (ctypes.c_char_p * 4)(node.encode(), b"-e", b"process.exit(7)", None)
            environment = (ctypes.c_char_p * 1)(None)
            confine.LIBC.execve(other, argv, environment)
            if ctypes.get_errno() != errno.EPERM:
                os._exit(1)
            confine.LIBC.execve(allowed, argv, environment)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


# -- files ----------------------------------------------------------------------------


def test_fs_reads_and_writes_of_host_files(sandbox, run_js):
    marker = new_token("node-write")
    result = run_js(js(f"""
const fs = require('fs');
exports.attack = () => {{
  const out = {{}};
  for (const path of ['/tmp/{marker}', '/{marker}', '/usr/bin/{marker}', '/scratch/{marker}',
                      '{sandbox.host_dir}/{marker}', '/dev/shm/{marker}']) {{
    out['write ' + path] = attempt(() => fs.writeFileSync(path, 'x'));
  }}
  for (const path of ['{sandbox.canary_file}', '/etc/passwd', '/etc/shadow', '/proc/self/environ',
                      '/proc/1/cmdline', '/root/.bashrc', '{os.getcwd()}/executor_project/settings.py']) {{
    out['read ' + path] = attempt(() => fs.readFileSync(path, 'utf8'));
  }}
  out.overwriteNode = attempt(() => fs.writeFileSync('/usr/bin/node', 'x'));
  out.chmodNode = attempt(() => fs.chmodSync('/usr/bin/node', 0o777));
  out.symlinkOut = attempt(() => fs.symlinkSync('/etc', '/scratch/run/etc') || fs.readdirSync('/scratch/run/etc'));
  out.listRoot = attempt(() => fs.readdirSync('/').join(','));
  return out;
}};
"""))
    assert result.status == "success", result
    observed = dict(result.result)
    listing = observed.pop("listRoot")
    assert listing["ok"] and "etc" not in listing["value"].split(","), listing
    symlink = observed.pop("symlinkOut")
    assert not symlink["ok"], symlink
    assert all(not outcome["ok"] for outcome in observed.values()), observed
    assert not list(sandbox.host_dir.glob(f"{marker}*")) and not os.path.exists(f"/tmp/{marker}")
    host_intact(sandbox, result)


# -- sockets --------------------------------------------------------------------------


def test_net_dgram_http_sockets(sandbox, run_js):
    addresses = sandbox.listeners.addresses()
    result = run_js(js(f"""
exports.attack = async () => {{
  const out = {{}};
  for (const name of ['net', 'dgram', 'http', 'https', 'http2', 'tls', 'dns']) {{
    out[name] = attempt(() => require(name));
  }}
  out.tcpWrap = attempt(() => process.binding('tcp_wrap'));
  out.globalFetch = attempt(() => fetch('http://127.0.0.1:{addresses["tcp_port"]}/'));
  out.webSocket = attempt(() => new WebSocket('ws://127.0.0.1:{addresses["tcp_port"]}/'));
  try {{ await (globalThis.fetch || (() => {{ throw new Error('no fetch'); }}))('http://127.0.0.1/'); out.awaitFetch = {{ ok: true }}; }}
  catch (error) {{ out.awaitFetch = {{ ok: false, error: String(error.message) }}; }}
  return out;
}};
"""))
    assert result.status == "success", result
    assert all(not outcome["ok"] for outcome in result.result.values()), result.result
    assert sandbox.listeners.received() == {}
    host_intact(sandbox, result)


def test_ctx_http_without_a_broker_is_refused(sandbox, run_js):
    result = run_js("exports.attack = async (params, ctx) => (await ctx.http.get('http://127.0.0.1:1/')).status;\n")
    assert result.error_type == "SANDBOX_VIOLATION", result
    assert sandbox.listeners.received() == {}


# -- signals ---------------------------------------------------------------------------


def test_process_kill_of_other_pids(sandbox, run_js):
    result = run_js(js("""
exports.attack = () => {
  const out = {};
  for (const pid of [1, -1, process.ppid, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 1000]) {
    if (pid === process.pid) continue;
    out[pid] = attempt(() => process.kill(pid, 'SIGKILL'));
  }
  return out;
};
"""))
    assert result.status == "success", result
    # kill(-1) reports success when every process it tried refused (EPERM):
    # what matters is that nothing died, which host_intact and the next run see.
    observed = result.result
    killed_all = observed.pop("-1")
    assert all(not outcome["ok"] for outcome in observed.values()), {pid: o for pid, o in observed.items() if o["ok"]}
    assert killed_all["ok"] or killed_all["error"] in ("EPERM", "ESRCH")
    host_intact(sandbox, result)
    assert run_js("exports.attack = () => 'still here';\n").result == "still here"


# -- memory ----------------------------------------------------------------------------


def test_webassembly_memory_bomb(sandbox, run_js):
    result = run_js("""
exports.attack = () => {
  const memories = [];
  for (;;) {
    const memory = new WebAssembly.Memory({ initial: 256, maximum: 65536 });
    new Uint8Array(memory.buffer).fill(1);
    memories.push(memory);
  }
};
""", memory_mb=96, timeout_ms=10000)
    assert result.error_type == "MEMORY_LIMIT_EXCEEDED", result
    host_intact(sandbox, result)


def test_flooding_stderr_only_hurts_the_run(sandbox, run_js):
    """Descriptor 2 is a pipe the fork-server reads once the child is dead:
    a plugin writing to it past its size is refused (EAGAIN) or blocks
    itself until its deadline; the fork-server never waits on it."""
    result = run_js("exports.attack = () => { const fs = require('fs'); for (;;) fs.writeSync(2, 'x'.repeat(65536)); };\n",
                    timeout_ms=1000)
    assert result.error_type in ("PLUGIN_ERROR", "TIMEOUT"), result
    host_intact(sandbox, result)


# -- back doors and pollution ----------------------------------------------------------


def test_ctx_cannot_be_polluted_and_nothing_survives_into_the_next_run(sandbox, run_js):
    polluting = run_js(js("""
const fs = require('fs');
exports.attack = (params, ctx) => {
  Object.prototype.polluted = 'yes';
  JSON.stringify = () => '"hijacked"';
  globalThis.leftover = ctx.secrets.TOKEN;
  process.env.LEFT = 'over';
  fs.writeFileSync(ctx.scratchDir + '/left.txt', ctx.secrets.TOKEN);
  attempt(() => { ctx.secrets.TOKEN = 'changed'; });
  attempt(() => { ctx.http.fetch = () => 1; });
  attempt(() => { ctx.log = null; });
  attempt(() => Object.defineProperty(ctx, 'executionId', { value: 'forged' }));
  attempt(() => Object.setPrototypeOf(ctx, { forged: true }));
  return { secret: ctx.secrets.TOKEN, fetch: typeof ctx.http.fetch, log: typeof ctx.log,
           executionId: ctx.executionId, forged: ctx.forged === true };
};
"""), secrets={"TOKEN": "org-a-secret-value"})
    # ctx is frozen (its secrets and http too), and the runtime bound what
    # it answers with before the plugin could replace it.
    assert polluting.status == "success", polluting
    observed = polluting.result
    executed = observed.pop("executionId")
    assert observed == {"secret": "org-a-secret-value", "fetch": "function", "log": "function", "forged": False}
    assert executed not in ("forged", None)
    follower = run_js(js("""
const fs = require('fs');
exports.attack = (params, ctx) => ({
  polluted: ({}).polluted === undefined ? null : 'polluted',
  leftover: globalThis.leftover === undefined ? null : globalThis.leftover,
  env: process.env.LEFT === undefined ? null : process.env.LEFT,
  scratch: fs.readdirSync(ctx.scratchDir),
  secrets: Object.keys(ctx.secrets),
  stringify: JSON.stringify({ a: 1 }),
});
"""))
    assert follower.status == "success", follower
    assert follower.result == {"polluted": None, "leftover": None, "env": None, "scratch": [], "secrets": [],
                               "stringify": '{"a":1}'}
    host_intact(sandbox, follower)


def test_secrets_of_another_organization(sandbox, run_js, run_js_b):
    secret = new_token("org-a-secret")
    first = run_js("exports.attack = (params, ctx) => { globalThis.kept = ctx.secrets.KEY; return ctx.secrets.KEY.length; };\n",
                   secrets={"KEY": secret})
    assert first.status == "success", first
    hunt = js("""
const fs = require('fs');
exports.attack = (params, ctx) => {
  const found = [];
  const look = (label, fn) => { const outcome = attempt(fn); if (outcome.ok && outcome.value && outcome.value.includes(params.token)) found.push(label); };
  look('global', () => globalThis.kept);
  look('secrets', () => JSON.stringify(ctx.secrets));
  look('environ', () => JSON.stringify(process.env));
  look('scratch', () => fs.readdirSync('/scratch').join(','));
  look('heap', () => require('v8').getHeapSnapshot().read().toString());
  return found;
};
""")
    for runner in (run_js, run_js_b):
        result = runner(hunt, params={"token": secret})
        assert result.status == "success" and result.result == [], result
        assert secret not in str(result.logs) and secret not in result.message
        host_intact(sandbox, result)
    assert TOKEN  # the suite's token for files and sockets: none appeared (host_intact)


# -- beneath the allowlist ---------------------------------------------------------------

BENEATH_THE_ALLOWLIST = r"""
const out = {};
const attempt = (name, fn) => { try { out[name] = { ok: true, value: String(fn()).slice(0, 100) }; }
                                catch (error) { out[name] = { ok: false, error: String(error.code || error.message) }; } };
const cp = require('child_process');
attempt('spawnSync', () => { const r = cp.spawnSync('/usr/bin/node', ['-e', '1']); if (r.error) throw r.error; return r.status; });
attempt('execFileSync', () => cp.execFileSync('/bin/sh', ['-c', 'id']));
const tcp = require('net').connect(PORT, '127.0.0.1');
out.tcpSocket = { ok: false, error: 'no answer' };
tcp.on('connect', () => { out.tcpSocket = { ok: true, value: 'connected' }; });
tcp.on('error', (error) => { out.tcpSocket = { ok: false, error: String(error.code) }; });
const udp = require('dgram').createSocket('udp4');
out.udpSocket = { ok: false, error: 'no answer' };
udp.on('listening', () => { out.udpSocket = { ok: true, value: 'bound' }; });
udp.on('error', (error) => { out.udpSocket = { ok: false, error: String(error.code) }; });
udp.bind(0);
attempt('writeOutside', () => require('fs').writeFileSync('/tmp/beneath-TOKEN', 'x'));
setTimeout(() => { process.stdout.write(JSON.stringify(out)); }, 200);
process.on('uncaughtException', (error) => { out.uncaught = String(error.code || error.message); });
"""


def test_the_os_layers_stop_node_without_the_allowlist(sandbox, tmp_path):
    """The allowlist and the removed bindings are defence in depth: a Node
    process with every API of its own, under the Node seccomp filter and
    Landlock ruleset alone (no namespaces, uid or view), still cannot start
    a process, open a socket or write outside its scratch directory."""
    node = os.path.realpath("/usr/bin/node")
    loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    token = new_token("beneath")
    script = BENEATH_THE_ALLOWLIST.replace("PORT", str(sandbox.listeners.tcp_port)).replace("TOKEN", token)
    path = ctypes.create_string_buffer(node.encode())
    program, _ = confine.compile_seccomp_filter(runtime="node", exec_path_address=ctypes.addressof(path))
    ruleset = confine.create_landlock_ruleset(confine.landlock_abi(), writable_dir=str(tmp_path),
                                              executable_files=(node, loader))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(write_end, 1)
            confine.prctl(confine.PR_SET_NO_NEW_PRIVS, 1)
            confine.landlock_restrict_self(ruleset)
            confine.load_seccomp(program)
            argv = (ctypes.c_char_p * 4)(node.encode(), b"-e", script.encode(), None)
            confine.LIBC.execve(path, argv, (ctypes.c_char_p * 1)(None))
        finally:
            os._exit(2)
    os.close(write_end)
    os.close(ruleset)
    with os.fdopen(read_end) as output:
        observed = json.loads(output.read())
    os.waitpid(pid, 0)
    assert set(observed) >= {"spawnSync", "execFileSync", "tcpSocket", "udpSocket", "writeOutside"}, observed
    assert not any(outcome["ok"] for name, outcome in observed.items() if name != "uncaught"), observed
    assert observed["spawnSync"]["error"] == observed["tcpSocket"]["error"] == "EPERM", observed
    assert not os.path.exists(f"/tmp/{token}")
    assert sandbox.listeners.received() == {}
