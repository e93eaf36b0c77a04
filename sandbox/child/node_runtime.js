'use strict';
// What runs inside a sandboxed Node.js child: the JavaScript twin of
// runtime.py. The fork-server starts this script in a spare that has already
// entered every isolation layer; it waits for its one run on the channel
// (descriptor 3), loads the plugin's CommonJS modules from the sources in the
// request, calls one action and sends the outcome back, then exits. Nothing
// here is trusted by the host, which re-checks sizes and redacts what comes
// back. The OS layers are the wall; the builtin allowlist below only spares a
// plugin from reaching for what the wall refuses anyway.
//
// The channel speaks the frames of protocol.py: a 4-byte big-endian length,
// then JSON. It is read and written synchronously, as the Python runtime
// does: a run waits for its request, and each egress request waits for its
// answer (the host serves one at a time).

const fs = require('node:fs');
const util = require('node:util');
const vm = require('node:vm');

const CHANNEL_FD = 3;
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const PLUGIN_PREFIX = '<plugin>/';
const SCRATCH_DIR = process.argv[2] || null;
// Builtins a plugin may require: computation, encoding, files (the scratch
// space is the only place it can write) and timers. Refused: everything that
// makes processes, threads or sockets, loads code another way or looks into
// the runtime (child_process, cluster, worker_threads, net, tls, dgram,
// http, https, http2, dns, inspector, vm, v8, repl, module, wasi, ...).
const ALLOWED_BUILTINS = new Set([
  'assert', 'assert/strict', 'buffer', 'crypto', 'events', 'fs', 'fs/promises', 'os', 'path', 'path/posix',
  'querystring', 'readline', 'stream', 'stream/promises', 'string_decoder', 'timers', 'timers/promises',
  'url', 'util', 'util/types', 'zlib', 'perf_hooks', 'async_hooks',
]);
const builtinRequire = require;
// Bound now: a plugin may replace what its own `require('fs')` returns, and
// `process` is its to change too.
const { readSync, writeSync, closeSync } = fs;
const reallyExit = process.reallyExit.bind(process);
const { stringify, parse } = JSON;
const bufferFrom = Buffer.from.bind(Buffer);
const bufferAlloc = Buffer.alloc.bind(Buffer);
const byteLength = Buffer.byteLength.bind(Buffer);

// -- the channel -------------------------------------------------------------

function readExactly(size) {
  const buffer = bufferAlloc(size);
  let offset = 0;
  while (offset < size) {
    const count = readSync(CHANNEL_FD, buffer, offset, size - offset, null);
    if (count === 0) throw new Error('channel closed');
    offset += count;
  }
  return buffer;
}

function recvFrame() {
  const size = readExactly(4).readUInt32BE(0);
  if (size > MAX_FRAME_BYTES) throw new Error(`frame of ${size} bytes is over ${MAX_FRAME_BYTES}`);
  return parse(readExactly(size).toString('utf8'));
}

function sendFrame(message) {
  const payload = bufferFrom(stringify(message), 'utf8');
  if (payload.length > MAX_FRAME_BYTES) throw new RangeError(`frame of ${payload.length} bytes is over ${MAX_FRAME_BYTES}`);
  const frame = bufferAlloc(4 + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, 4);
  let offset = 0;
  while (offset < frame.length) offset += writeSync(CHANNEL_FD, frame, offset, frame.length - offset);
}

// -- logs ----------------------------------------------------------------------

class LogBuffer {
  constructor(maxBytes) {
    this.reset(maxBytes);
  }

  reset(maxBytes) {
    this.lines = [];
    this.size = 0;
    this.maxBytes = maxBytes;
    this.truncated = false;
  }

  add(text) {
    if (this.truncated) return;
    const encoded = byteLength(text, 'utf8');
    if (this.size + encoded > this.maxBytes) {
      const room = this.maxBytes - this.size;
      if (room > 0) this.lines.push(bufferFrom(text, 'utf8').subarray(0, room).toString('utf8').replace(/\uFFFD$/, ''));
      this.truncated = true;
      return;
    }
    this.lines.push(text);
    this.size += encoded;
  }

  addText(text) {
    for (const line of String(text).replace(/\n$/, '').split('\n')) this.add(line);
  }
}

// -- ctx -------------------------------------------------------------------------

class EgressDenied extends Error {}
EgressDenied.prototype.name = 'EgressDenied';
class EgressError extends Error {}
EgressError.prototype.name = 'EgressError';
class InvalidParams extends Error {}
InvalidParams.prototype.name = 'InvalidParams';

function response(reply) {
  const body = bufferFrom(reply.body, 'base64');
  return Object.freeze({
    status: reply.status,
    ok: reply.status >= 200 && reply.status < 400,
    url: reply.url,
    headers: Object.freeze({ ...reply.headers }),
    text: async () => body.toString('utf8'),
    json: async () => parse(body.toString('utf8')),
    arrayBuffer: async () => body.buffer.slice(body.byteOffset, body.byteOffset + body.length),
  });
}

// `ctx.http.fetch(url, {method, headers, body, timeout})`: a frame to the
// host's egress broker, as Python's ctx.http. A promise, like fetch; the
// process waits for the broker's answer.
async function fetchThroughBroker(url, options = {}) {
  const headers = {};
  for (const [key, value] of Object.entries(options.headers || {})) headers[String(key)] = String(value);
  let body = options.body;
  if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
    body = stringify(body);
    if (!Object.keys(headers).some((key) => key.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
  }
  sendFrame({
    op: 'http',
    method: String(options.method || 'GET').toUpperCase(),
    url: String(url),
    headers,
    body: body === undefined || body === null ? null : bufferFrom(body).toString('base64'),
    timeout: options.timeout === undefined ? null : options.timeout,
  });
  const reply = recvFrame();
  if (!reply.ok) {
    const ErrorClass = reply.kind === 'denied' ? EgressDenied : EgressError;
    throw new ErrorClass(reply.message || 'request refused');
  }
  return response(reply);
}

function makeContext(request, logs) {
  const http = Object.freeze({
    fetch: fetchThroughBroker,
    get: (url, options = {}) => fetchThroughBroker(url, { ...options, method: 'GET' }),
    post: (url, options = {}) => fetchThroughBroker(url, { ...options, method: 'POST' }),
  });
  return Object.freeze({
    secrets: Object.freeze({ ...(request.secrets || {}) }),
    http,
    executionId: request.executionId,
    actorId: request.actorId || '',
    // 1 for the first run of an execution, 2 for its first retry, ...
    attempt: request.attempt || 1,
    // The run's own empty directory (also TMPDIR), gone when it ends.
    scratchDir: SCRATCH_DIR,
    log: (...args) => logs.add(args.map(String).join(' ')),
    reject: (message, details) => {
      const error = new InvalidParams(String(message));
      if (details !== undefined) {
        stringify(details); // details that are not JSON are the plugin's error, raised here
        error.details = details;
      }
      throw error;
    },
  });
}

// -- the elizaOS adapter -----------------------------------------------------------
// A plugin written for elizaOS exports a plugin object whose `actions` each
// have a `name`, a `validate` and a `handler` taking an agent runtime. With
// `"adapter": "eliza"` in its manifest, the request's handler is such an
// action's name, and the action runs against the minimal runtime below, made
// of ctx alone: settings from the granted secrets (then the manifest's
// `settings`), fetch through the egress broker, a logger to the run's logs.
// What an engine of one-shot runs cannot offer (memory, models, services,
// events) throws, naming the call, instead of pretending.

class NotSupportedByEngine extends Error {}
NotSupportedByEngine.prototype.name = 'NotSupportedByEngine';

const UNSUPPORTED_RUNTIME_CALLS = [
  'useModel', 'generateText', 'composeState', 'createMemory', 'getMemories', 'getMemoryById', 'searchMemories',
  'updateMemory', 'deleteMemory', 'addEmbeddingToMemory', 'getCache', 'setCache', 'deleteCache', 'getService',
  'registerService', 'emitEvent', 'registerEvent', 'ensureConnection', 'getEntityById', 'getRoom', 'createTask',
  'getTasks', 'processActions', 'evaluate', 'registerAction', 'registerProvider', 'registerEvaluator',
];
// The agent every run acts as: there is no agent, only one run.
const ENGINE_AGENT_ID = '00000000-0000-0000-0000-000000000000';

function elizaPlugin(exports) {
  const candidates = exports == null ? [] : [exports, exports.default, ...Object.values(exports)];
  const plugin = candidates.find((candidate) => candidate != null && Array.isArray(candidate.actions));
  if (!plugin) throw new Error('the entrypoint exports no elizaOS plugin (an object with an `actions` array)');
  return plugin;
}

function elizaRuntime(plugin, ctx, settings) {
  const text = (value) => (typeof value === 'string' ? value : util.inspect(value, { depth: 3 }));
  const line = (level) => (...args) => ctx.log(`[${level}]`, ...args.map(text));
  const runtime = {
    agentId: ENGINE_AGENT_ID,
    character: Object.freeze({ name: 'plugin-engine', bio: [], settings: Object.freeze({}) }),
    actions: plugin.actions,
    providers: [],
    evaluators: [],
    getSetting: (key) => {
      const name = String(key);
      if (Object.prototype.hasOwnProperty.call(ctx.secrets, name)) return ctx.secrets[name];
      return Object.prototype.hasOwnProperty.call(settings, name) ? settings[name] : null;
    },
    fetch: (url, options) => ctx.http.fetch(url, options),
    logger: Object.freeze({
      trace: line('trace'), debug: line('debug'), info: line('info'), log: line('info'),
      success: line('success'), warn: line('warn'), error: line('error'),
    }),
  };
  for (const name of UNSUPPORTED_RUNTIME_CALLS) {
    runtime[name] = () => {
      throw new NotSupportedByEngine(`runtime.${name} is not supported by this engine: its elizaOS adapter offers `
        + 'actions with getSetting, fetch and logger, and no memory, models, services or events');
    };
  }
  return Object.freeze(runtime);
}

// The run's result: what the handler returned and every content it passed
// to `callback`. An ActionResult with `success: false` is the action's own
// failure (PLUGIN_ERROR); a `validate` answering false is its refusal of
// these params (VALIDATION_ERROR).
async function runElizaAction(exports, actionName, params, ctx, settings) {
  const plugin = elizaPlugin(exports);
  const action = plugin.actions.find((candidate) => candidate != null && candidate.name === actionName);
  if (!action || typeof action.handler !== 'function') {
    throw new Error(`the elizaOS plugin has no action named '${actionName}' with a handler`);
  }
  const runtime = elizaRuntime(plugin, ctx, settings || {});
  const content = { text: '', ...(params && typeof params === 'object' ? params : {}), source: 'plugin-engine' };
  const message = {
    id: ctx.executionId, entityId: ctx.actorId || ENGINE_AGENT_ID, agentId: ENGINE_AGENT_ID,
    roomId: ctx.executionId, content, createdAt: Date.now(),
  };
  const state = { values: {}, data: {}, text: '' };
  if (typeof action.validate === 'function' && !(await action.validate(runtime, message, state))) {
    ctx.reject(`the action ${actionName} declined to run (its validate answered false)`);
  }
  const responses = [];
  const callback = async (response) => {
    responses.push(response === undefined ? null : response);
    return [];
  };
  const returned = await action.handler(runtime, message, state, { ...content }, callback, []);
  if (returned != null && typeof returned === 'object' && returned.success === false) {
    const reason = returned.error instanceof Error ? returned.error.message : returned.error ?? returned.text;
    throw new Error(`the action ${actionName} failed: ${reason === undefined ? 'no reason given' : String(reason)}`);
  }
  return { returned: returned === undefined ? null : returned, responses };
}

// -- loading the plugin ---------------------------------------------------------

function normalise(path) {
  const parts = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return parts.join('/');
}

function dirname(path) {
  const index = path.lastIndexOf('/');
  return index < 0 ? '' : path.slice(0, index);
}

// A CommonJS loader over the sources sent on the channel: plugin code never
// touches the child's (read-only) filesystem.
function makeLoader(modules) {
  const cache = new Map();

  const has = (path) => Object.prototype.hasOwnProperty.call(modules, path);

  function resolveFile(base) {
    for (const candidate of [base, `${base}.js`, `${base}.cjs`, `${base}.json`, `${base}/index.js`]) {
      if (has(candidate)) return candidate;
    }
    if (has(`${base}/package.json`)) {
      const main = parse(modules[`${base}/package.json`].source).main;
      if (typeof main === 'string') return resolveFile(normalise(`${base}/${main}`));
    }
    return null;
  }

  // A bundled package: node_modules/<name> in the requiring module's folder
  // or any folder above it, as Node looks for it.
  function resolvePackage(specifier, fromDir) {
    for (let dir = fromDir; ; dir = dirname(dir)) {
      const found = resolveFile(normalise(`${dir}/node_modules/${specifier}`));
      if (found) return found;
      if (dir === '') return null;
    }
  }

  function requireFrom(fromDir) {
    return function require(specifier) {
      specifier = String(specifier);
      if (specifier.startsWith('./') || specifier.startsWith('../') || specifier.startsWith('/')) {
        const found = resolveFile(normalise(`${fromDir}/${specifier}`));
        if (found) return load(found);
        throw new Error(`Cannot find module '${specifier}' in the plugin`);
      }
      const name = specifier.replace(/^node:/, '');
      if (ALLOWED_BUILTINS.has(name)) return builtinRequire(`node:${name}`);
      const bundled = specifier.startsWith('node:') ? null : resolvePackage(specifier, fromDir);
      if (bundled) return load(bundled);
      throw new Error(`the sandbox does not offer the module '${specifier}' to plugins (not a builtin it allows, nor bundled in node_modules/)`);
    };
  }

  function load(path) {
    if (cache.has(path)) return cache.get(path).exports;
    const module = { exports: {}, id: path, filename: PLUGIN_PREFIX + path, loaded: false };
    cache.set(path, module);
    const source = modules[path].source;
    if (path.endsWith('.json')) {
      module.exports = parse(source);
    } else {
      const wrapper = vm.compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], {
        filename: PLUGIN_PREFIX + path,
      });
      wrapper.call(module.exports, module.exports, requireFrom(dirname(path)), module, PLUGIN_PREFIX + path,
        PLUGIN_PREFIX + dirname(path));
    }
    module.loaded = true;
    return module.exports;
  }

  return load;
}

// The ways back to Node's own loader and bindings, closed before plugin code
// exists: what the allowlist refuses stays refused. (The OS layers stand
// whatever a plugin reaches: this only keeps the allowlist honest.)
function closeBackDoors() {
  for (const name of ['binding', '_linkedBinding', 'dlopen', 'getBuiltinModule', 'mainModule']) {
    try {
      Object.defineProperty(process, name, { value: undefined, configurable: false, writable: false });
    } catch {
      delete process[name];
    }
  }
  process.env = { ...(SCRATCH_DIR ? { TMPDIR: SCRATCH_DIR } : {}) };
}

function captureOutput(logs) {
  const write = (chunk) => {
    logs.addText(typeof chunk === 'string' ? chunk : bufferFrom(chunk).toString('utf8'));
    return true;
  };
  process.stdout.write = write;
  process.stderr.write = write;
  const line = (...args) => logs.add(util.format(...args));
  for (const name of ['log', 'info', 'warn', 'error', 'debug', 'trace']) globalThis.console[name] = line;
}

// -- one run ---------------------------------------------------------------------

function pluginTraceback(error) {
  if (!(error instanceof Error) || typeof error.stack !== 'string') return '';
  const lines = error.stack.split('\n');
  const frames = lines.slice(1).filter((line) => line.includes(PLUGIN_PREFIX));
  return [lines[0], ...frames].join('\n').slice(-8192);
}

function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return `uncaught value: ${util.inspect(error, { depth: 2 })}`;
  } catch {
    return 'uncaught value';
  }
}

function errorOutcome(error) {
  if (error instanceof InvalidParams) {
    return { status: 'error', errorType: 'VALIDATION_ERROR', message: error.message.slice(0, 2000), details: error.details ?? null };
  }
  if (error instanceof EgressDenied) return { status: 'error', errorType: 'SANDBOX_VIOLATION', message: `egress refused: ${error.message}` };
  if (error instanceof EgressError) return { status: 'error', errorType: 'NETWORK_ERROR', message: error.message };
  if (error instanceof RangeError && /allocation failed|out of memory|Invalid typed array length|Invalid array buffer length/i.test(error.message)) {
    return { status: 'error', errorType: 'MEMORY_LIMIT_EXCEEDED', message: 'the action ran out of memory' };
  }
  return { status: 'error', errorType: 'PLUGIN_ERROR', message: describe(error).slice(0, 2000), traceback: pluginTraceback(error) };
}

function resultOutcome(result, maxResultBytes) {
  let encoded;
  try {
    encoded = stringify(result === undefined ? null : result);
  } catch (error) {
    return errorOutcome(new TypeError(`the action returned a value that is not JSON-serialisable: ${error.message}`));
  }
  const size = byteLength(encoded, 'utf8');
  if (size > maxResultBytes) {
    return { status: 'error', errorType: 'OUTPUT_LIMIT_EXCEEDED', message: `result is ${size} bytes, over the limit of ${maxResultBytes}` };
  }
  return { status: 'success', resultJson: encoded };
}

let finished = false;

function finish(outcome, logs) {
  if (finished) return;
  finished = true;
  const frame = { op: 'result', ...outcome, logs: logs.lines, logsTruncated: logs.truncated };
  try {
    sendFrame(frame);
  } catch (error) {
    sendFrame({ op: 'result', status: 'error', errorType: 'OUTPUT_LIMIT_EXCEEDED', message: String(error.message), logs: [], logsTruncated: true });
  }
  // The host reads the end of the channel as the end of the run.
  closeSync(CHANNEL_FD);
  reallyExit(0);
}

async function execute(request, logs) {
  const load = makeLoader(request.modules);
  const exports = load(request.entrypoint);
  const ctx = makeContext(request, logs);
  if (request.adapter === 'eliza') {
    return runElizaAction(exports, request.handler, request.params, ctx, request.settings);
  }
  const handler = exports == null ? undefined : exports[request.handler];
  if (typeof handler !== 'function') throw new Error(`handler '${request.handler}' is not exported by the plugin`);
  return handler(request.params, ctx);
}

function serveOneRun(logs) {
  const request = recvFrame();
  logs.reset(request.maxLogBytes);
  const fail = (error) => finish(errorOutcome(error), logs);
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  // The event loop ran dry with the handler's promise still pending: it can
  // never settle.
  process.on('beforeExit', () => fail(new Error("the action's promise never settled (nothing left to wait for)")));
  execute(request, logs).then((result) => finish(resultOutcome(result, request.maxResultBytes), logs), fail);
}

function warmUp() {
  // One pass through the loader and the result path before the run is
  // assigned: V8 compiles them now, off the run's time.
  const load = makeLoader({ 'warm.js': { source: 'exports.warm = (params) => ({ ok: [params] });' } });
  resultOutcome(load('warm.js').warm({ warm: true }), 1024);
}

// Done while the spare waits: Node makes process.stdout and stderr on first
// use, which takes milliseconds a run would otherwise pay.
const logs = new LogBuffer(0);
captureOutput(logs);
closeBackDoors();
warmUp();
serveOneRun(logs);
