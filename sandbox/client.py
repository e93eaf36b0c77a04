"""The host side of the sandbox: start a fork-server for this process's slot
and run one action at a time through it.

`ForkServerClient.run(RunRequest, egress_handler) -> RunResult` is the one
interface the rest of the service uses (exported by the package). Standard library only, so benchmarks
and tests can drive it without Django.
"""

import base64
import fcntl
import importlib.util
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .child import protocol

# The fork-server is a fresh `python -I -S` that imports the `child` package
# from this folder under that top-level name: it loads only what runs in the
# fork-server and its children, none of the host side (this module and the
# package's interface), and no project path is on its sys.path.
SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
FORKSERVER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from child.forkserver import main; main(sys.argv[2])"
)
READY_TIMEOUT_SECONDS = 20
# A run's scratch space (its private tmpfs, TMPDIR), unless it asks for
# another size; and the most a fork-server lets a run ask for, unless told.
DEFAULT_SCRATCH_MB = 16
DEFAULT_MAX_SCRATCH_MB = 256
# How long past its own deadline the host waits for the fork-server's report
# before declaring it stuck and replacing it.
REPORT_GRACE_SECONDS = 5
# The runtimes a plugin may name; "node" runs JavaScript (sandbox/child/node_runtime.js).
RUNTIMES = ("python", "node")
NODE_RUNTIME_SCRIPT = os.path.join(SANDBOX_DIR, "child", "node_runtime.js")
# How long the host waits for the fork-server to hand over a Node run's
# channel: the first Node run of a slot starts its Node process then.
NODE_CHANNEL_TIMEOUT_SECONDS = 10


class SandboxUnavailable(Exception):
    """The sandbox cannot run plugins here: a required layer is missing, or
    the fork-server would not start. Runs are refused (fail closed)."""


@dataclass
class RunRequest:
    """One run. `modules` maps each of the plugin's .py paths to its source
    (str) or to its compiled code (marshal bytes, which spare the child a
    compile); for `runtime="node"`, each of its .js and .json paths to its
    source."""

    execution_id: str
    modules: dict
    entrypoint: str
    handler: str
    params: object
    timeout_ms: int
    memory_bytes: int
    secrets: dict = field(default_factory=dict)
    # The size of the run's scratch space; what is written there counts
    # against `memory_bytes` too.
    scratch_mb: int = DEFAULT_SCRATCH_MB
    actor_id: str = ""
    attempt: int = 1
    max_result_bytes: int = 1024 * 1024
    max_log_bytes: int = 64 * 1024
    max_log_lines: int = 1000
    max_egress_requests: int = 50
    # The name of the plugin version's vendored tree under the client's
    # vendored_packages_dir ("" for none): the only one the run can reach.
    package_tree: str = ""
    # What must not come back from the child: None, or an object whose
    # `text(str)` redacts the values it hides and whose `trim_fragments(str)`
    # redacts what is left of one at either end of a text cut before it
    # could be redacted (executions.redaction.Redactor).
    redactor: object = None
    runtime: str = "python"
    # For a node run, "eliza": `handler` names an action of the elizaOS
    # plugin the entrypoint exports, run with `settings` (name to text) as
    # the defaults of its runtime.getSetting (node_runtime.js).
    adapter: str = ""
    settings: dict = field(default_factory=dict)


@dataclass
class RunResult:
    status: str  # success | error | timeout
    error_type: str = ""
    message: str = ""
    traceback: str = ""  # the plugin's own frames
    # For a VALIDATION_ERROR (the plugin rejected its params): the details it
    # gave, cleaned and redacted, or None.
    details: dict | list | None = None
    result_json: str | None = None
    logs: list = field(default_factory=list)
    logs_truncated: bool = False
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    max_rss_bytes: int = 0

    @property
    def result(self):
        return json.loads(self.result_json) if self.result_json is not None else None


def _non_negative(value):
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else 0.0


def _error(error_type, message, status="error", **kwargs):
    return RunResult(status=status, error_type=error_type, message=message, **kwargs)


# A uid is a host-wide resource: whatever service, checkout or command starts
# a fork-server, the lock that makes a slot's uid its own lives here.
HOST_LOCK_DIR = "/run/plugin-sandbox"


class SlotLock:
    """One slot per fork-server: its uid and cgroups belong to it alone, so
    no two live fork-servers on a host ever share a uid or a cgroup.

    As root the locks are host-wide (HOST_LOCK_DIR), keyed by uid; without
    root there is no uid to switch to, and `lock_dir` is used."""

    def __init__(self, lock_dir, slots, uid_base):
        directory = HOST_LOCK_DIR if os.geteuid() == 0 else lock_dir
        os.makedirs(directory, exist_ok=True)
        for index in range(slots):
            uid = uid_base + index
            handle = open(os.path.join(directory, f"uid-{uid}.lock"), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.uid = uid
            self.handle = handle
            return
        raise SandboxUnavailable(f"all {slots} sandbox slots (uids {uid_base}..{uid_base + slots - 1}) are taken")

    def release(self):
        self.handle.close()


def node_binary(path=None):
    """What the fork-server needs to know of the Node binary it starts
    (`path`, else `node` on PATH), or None when there is none: its path,
    its dynamic loader (as the binary names it, and the file that is:
    Landlock must let it execute too), the directories of its shared
    libraries as ldd lists them (the read-only view must hold them), and
    the runtime script."""
    path = path or shutil.which("node")
    if not path or not os.path.isfile(path):
        return None
    path = os.path.realpath(path)
    try:
        listing = subprocess.run(["ldd", path], capture_output=True, text=True, timeout=10, env={}).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    libraries = re.findall(r"(/\S+) \(0x", listing)
    loaders = [lib for lib in libraries if "/ld-linux" in lib or "/ld-musl" in lib]
    if not loaders:
        return None
    return {
        "path": path,
        # Where the binary names its loader, and the file that is.
        "interpreter": loaders[0],
        "loader": os.path.realpath(loaders[0]),
        "libraryDirs": sorted({os.path.dirname(os.path.realpath(lib)) for lib in libraries} | {os.path.dirname(loaders[0])}),
        "runtimeScript": NODE_RUNTIME_SCRIPT,
    }


def make_private_parent(directory):
    """Create the parent of the vendored trees (if needed) searchable but not
    listable by anyone else: a run reaches its own tree by name and cannot
    learn any other's."""
    os.makedirs(directory, mode=0o711, exist_ok=True)
    os.chmod(directory, 0o711)


class ForkServerClient:
    def __init__(self, *, lock_dir, slots=64, uid_base=200000, required_layers=(), python=None,
                 max_scratch_mb=DEFAULT_MAX_SCRATCH_MB, vendored_packages_dir=None, shared_packages_dir=None, node_path=None):
        """`vendored_packages_dir` holds one tree of unpacked wheels per
        plugin version (a run names its own in `RunRequest.package_tree`);
        `shared_packages_dir` is a site-packages directory every run may
        import from. Both are mounted read-only into the view."""
        self.lock_dir = lock_dir
        self.max_scratch_mb = max_scratch_mb
        # The fork-server starts in "/": relative paths would name other places.
        self.vendored_packages_dir = vendored_packages_dir and os.path.abspath(vendored_packages_dir)
        self.shared_packages_dir = shared_packages_dir and os.path.abspath(shared_packages_dir)
        self.slots = slots
        self.uid_base = uid_base
        self.required_layers = tuple(required_layers)
        self.python = python or os.path.realpath(sys.executable)
        self.node = node_binary(node_path)
        # Whether the fork-server can run Node plugins, and if not why.
        self.node_state = {"available": False, "reason": "the fork-server has not started"}
        self.process = None
        self.control = None
        self.slot = None
        self.layers = {}
        self.pid = None
        self.run_counter = 0

    # -- life cycle -----------------------------------------------------------

    def start(self):
        if self.slot is None:
            self.slot = SlotLock(self.lock_dir, self.slots, self.uid_base)
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seccomp_spec = importlib.util.find_spec("pyseccomp")
        config = {
            "slot": f"uid-{self.slot.uid}",
            "uid": self.slot.uid,
            "gid": self.slot.uid,
            "controlFd": server_end.fileno(),
            "maxScratchBytes": self.max_scratch_mb << 20,
            "seccompModulePath": os.path.dirname(seccomp_spec.origin) if seccomp_spec else None,
            "vendoredPackagesDir": self.vendored_packages_dir,
            "sharedPackagesDir": self.shared_packages_dir,
            "node": self.node,
        }
        if self.vendored_packages_dir:
            make_private_parent(self.vendored_packages_dir)
        if self.shared_packages_dir and not os.path.isdir(self.shared_packages_dir):
            raise SandboxUnavailable(f"the shared packages directory {self.shared_packages_dir} does not exist")
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", "-B", "-c", FORKSERVER_BOOTSTRAP, SANDBOX_DIR, json.dumps(config)],
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(server_end.fileno(),),
            cwd="/",
        )
        server_end.close()
        self.control = host_end
        ready, _, _ = select.select([self.control], [], [], READY_TIMEOUT_SECONDS)
        if not ready:
            self.stop()
            raise SandboxUnavailable("the sandbox fork-server did not start")
        message = self.control.recv(65536)
        if not message:
            self.stop()
            raise SandboxUnavailable("the sandbox fork-server exited during start-up")
        hello = json.loads(message)
        self.pid = hello["pid"]
        self.layers = hello["layers"]
        self.node_state = hello["node"]

    def stop(self):
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.process is not None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
            self.process.wait()
            self.process = None

    def close(self):
        self.stop()
        if self.slot is not None:
            self.slot.release()
            self.slot = None

    def ensure_started(self):
        if self.process is None or self.process.poll() is not None:
            self.stop()
            self.start()
        missing = self.missing_layers()
        if missing:
            details = "; ".join(f"{name}: {self.layers.get(name, {}).get('reason') or 'unknown layer'}" for name in missing)
            raise SandboxUnavailable(f"required sandbox layers are missing: {details}")

    def missing_layers(self):
        return [name for name in self.required_layers if not self.layers.get(name, {}).get("active")]

    # -- one run --------------------------------------------------------------

    def run(self, request, egress_handler=None):
        """Run one action; never raises for anything the plugin does (a
        scratch space over this client's ceiling is the caller's mistake)."""
        if not 0 < request.scratch_mb <= self.max_scratch_mb:
            raise ValueError(f"a run's scratch space is 1 to {self.max_scratch_mb} MiB, not {request.scratch_mb}")
        if request.runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {request.runtime!r}")
        self.ensure_started()
        self.run_counter += 1
        run_id = self.run_counter
        if request.runtime == "node":
            return self._run_node(request, egress_handler, run_id)
        host_channel, child_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            header = json.dumps(
                {"runId": run_id, "timeoutMs": request.timeout_ms, "memoryBytes": request.memory_bytes,
                 "scratchBytes": request.scratch_mb << 20}
            ).encode()
            outgoing = bytearray(self._request_frame(request))
            # Most requests fit the socket buffer: written before the child
            # exists, they are waiting for it when it starts reading.
            host_channel.setblocking(False)
            try:
                del outgoing[: host_channel.send(outgoing)]
            except BlockingIOError:
                pass
            started = time.monotonic()
            try:
                socket.send_fds(self.control, [header], [child_channel.fileno()])
            except OSError:
                self.stop()
                return _error("WORKER_CRASHED", "the sandbox fork-server went away; it will be restarted")
            child_channel.close()
            return self._exchange(host_channel, outgoing, request, egress_handler, started, run_id)
        finally:
            host_channel.close()
            child_channel.close()

    def _run_node(self, request, egress_handler, run_id):
        """A Node run: the fork-server hands over the channel of the Node
        process it assigns (started ahead, reading it already)."""
        if not self.node_state.get("available"):
            raise SandboxUnavailable(f"JavaScript plugins cannot run here: {self.node_state.get('reason')}")
        header = json.dumps({"runId": run_id, "runtime": "node", "timeoutMs": request.timeout_ms,
                             "memoryBytes": request.memory_bytes, "scratchBytes": request.scratch_mb << 20}).encode()
        started = time.monotonic()
        try:
            self.control.send(header)
            channel = self._receive_channel(run_id, started + NODE_CHANNEL_TIMEOUT_SECONDS)
        except OSError:
            channel = None
        if channel is None:
            self.stop()
            return _error("WORKER_CRASHED", "the sandbox fork-server did not start the Node process; it will be restarted")
        try:
            channel.setblocking(False)
            return self._exchange(channel, bytearray(self._request_frame(request)), request, egress_handler, started, run_id)
        finally:
            channel.close()

    def _receive_channel(self, run_id, deadline):
        while (remaining := deadline - time.monotonic()) > 0:
            if not select.select([self.control], [], [], remaining)[0]:
                break
            message, fds, _, _ = socket.recv_fds(self.control, 65536, 1)
            if not message:
                break
            if fds:
                if json.loads(message).get("channelFor") == run_id:
                    return socket.socket(fileno=fds[0])
                os.close(fds[0])
        return None

    @staticmethod
    def _request_frame(request):
        return protocol.encode_frame(
            {
                "executionId": request.execution_id,
                "actorId": request.actor_id,
                "attempt": request.attempt,
                "modules": {
                    path: {"code": base64.b64encode(code).decode()} if isinstance(code, bytes) else {"source": code}
                    for path, code in request.modules.items()
                },
                "entrypoint": request.entrypoint,
                "handler": request.handler,
                "params": request.params,
                "secrets": request.secrets,
                "maxResultBytes": request.max_result_bytes,
                "maxLogBytes": request.max_log_bytes,
                "packageTree": request.package_tree,
                "adapter": request.adapter,
                "settings": request.settings,
            }
        )

    def _exchange(self, channel, outgoing, request, egress_handler, started, run_id):
        """Feed the child its request, serve its egress requests one at a
        time, and collect its answer.

        A run is answered once the child has sent its result and shut its
        channel before its deadline: the fork-server is then told to end it
        and replies with the kernel's account of its CPU and memory, without
        waiting for the process to be torn down. Otherwise (crash, kill,
        timeout, a child breaking the protocol) the answer is the
        fork-server's report of the reaped child.
        """
        # The child is untrusted: cap what we are willing to buffer from it.
        reader = protocol.FrameReader(max_frame_bytes=request.max_result_bytes * 2 + request.max_log_bytes * 8 + (1 << 20))
        deadline = started + request.timeout_ms / 1000 + REPORT_GRACE_SECONDS
        outcome = None
        report = None
        violation = None
        egress_requests = 0
        channel_open = True
        answered_sent = False
        # The report may come first (the fork-server learns a run is over from
        # the child too): the channel is still read to its end.
        while report is None or channel_open:
            if not channel_open and not answered_sent and (outcome is not None or violation):
                if violation or time.monotonic() - started < request.timeout_ms / 1000:
                    self.control.send(json.dumps({"answered": run_id}).encode())
                    answered_sent = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                return _error("WORKER_CRASHED", "the sandbox stopped answering; it was replaced")
            readers = [self.control] + ([channel] if channel_open else [])
            writers = [channel] if outgoing and channel_open else []
            readable, writable, _ = select.select(readers, writers, [], remaining)
            if writable:
                try:
                    del outgoing[: channel.send(outgoing)]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    outgoing.clear()
            if self.control in readable:
                message = self.control.recv(65536)
                if not message:
                    self.stop()
                    return _error("WORKER_CRASHED", "the sandbox fork-server exited during the run")
                message = json.loads(message)
                if message.get("runId") == run_id:
                    report = message
            if channel_open and channel in readable:
                try:
                    data = channel.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if data:
                    reader.feed(data)
                    try:
                        for frame in reader.frames():
                            if not isinstance(frame, dict):
                                continue
                            if frame.get("op") == "result":
                                outcome = frame
                            elif frame.get("op") == "http":
                                egress_requests += 1
                                # One request at a time, and a bounded number: a child
                                # that doesn't read its replies can't make us queue them.
                                if outgoing or egress_requests > request.max_egress_requests:
                                    raise protocol.ProtocolError("egress requests beyond what a run may make")
                                reply = egress_handler(frame) if egress_handler else {"ok": False, "kind": "denied", "message": "network access is not enabled"}
                                outgoing += protocol.encode_frame(reply)
                    except protocol.ProtocolError as error:
                        violation = str(error)
                        data = b""
                if not data:
                    channel_open = False
                    try:
                        channel.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        wall_ms = (time.monotonic() - started) * 1000
        return self._interpret(report, outcome, violation, request, wall_ms)

    @staticmethod
    def _interpret(report, outcome, violation, request, wall_ms):
        measures = {
            "wall_ms": wall_ms,
            "cpu_ms": _non_negative(report.get("cpuMs")),
            "max_rss_bytes": int(_non_negative(report.get("maxRssBytes"))),
        }
        seconds = request.timeout_ms / 1000
        if violation:
            if "bytes is over" in violation:
                return _error("OUTPUT_LIMIT_EXCEEDED", "the action sent more output than the limits allow", **measures)
            return _error("SANDBOX_VIOLATION", f"the action broke the sandbox protocol: {violation}", **measures)
        if report.get("timedOut") or report.get("signal") == signal.SIGXCPU:
            return _error("TIMEOUT", f"the action did not finish within {seconds:g} s", status="timeout", **measures)
        if report.get("oomKilled"):
            return _error("MEMORY_LIMIT_EXCEEDED", f"the action went over its memory limit of {request.memory_bytes >> 20} MiB"
                          " (the files in its scratch space count too)", **measures)
        if not report.get("answered"):
            if report.get("signal"):
                number = report["signal"]
                name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
                return _error("WORKER_CRASHED", f"the sandboxed process was killed by {name}", **measures)
            if outcome is None or report.get("exitCode") != 0:
                return _error("WORKER_CRASHED", f"the sandboxed process exited (code {report.get('exitCode')}) without a result", **measures)
        if outcome is None:
            return _error("WORKER_CRASHED", "the sandboxed process closed its channel without a result", **measures)
        redactor = request.redactor or NOTHING_HIDDEN
        cut_by_child = outcome.get("logsTruncated") is True
        logs, logs_truncated = _capped_logs(outcome.get("logs"), request, redactor, cut_by_child)
        common = dict(logs=logs, logs_truncated=logs_truncated or cut_by_child, **measures)
        if outcome.get("status") == "success" and isinstance(outcome.get("resultJson"), str):
            return _checked_result(outcome["resultJson"], request, common)
        error_type = outcome.get("errorType")
        if error_type not in CHILD_ERROR_TYPES:
            error_type = "PLUGIN_ERROR"
        if error_type == "VALIDATION_ERROR":
            told = {"details": _rejection_details(outcome.get("details"), redactor)}
        else:
            told = {"traceback": _capped_text(outcome.get("traceback"), MAX_TRACEBACK_CHARS, redactor)}
        return _error(error_type, _capped_text(outcome.get("message"), MAX_MESSAGE_CHARS, redactor), **told, **common)


class NothingHidden:
    """The redactor of a run with no secrets."""

    @staticmethod
    def text(value):
        return value

    trim_fragments = text


NOTHING_HIDDEN = NothingHidden()
MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 8192
MAX_DETAILS_CHARS = 4000


# What a child may say went wrong; anything else it claims is a plugin error.
# VALIDATION_ERROR is the plugin refusing its params (ctx.reject).
CHILD_ERROR_TYPES = {
    "PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED", "OUTPUT_LIMIT_EXCEEDED", "SANDBOX_VIOLATION", "NETWORK_ERROR",
    "VALIDATION_ERROR",
}


def clean_text(value):
    """Text from the child as something every database can store: valid
    UTF-8 (lone surrogates replaced) and no NUL characters."""
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    if value.isascii() and "\x00" not in value:
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace").replace("\x00", "\ufffd")


class ResultRefused(ValueError):
    """A result the host will not store, with the reason the caller is told."""


def clean_json(value, depth=0, text=clean_text):
    """`value` with every string (keys too) passed through `text`."""
    if depth > MAX_RESULT_DEPTH:
        raise ResultRefused(f"the result is nested deeper than {MAX_RESULT_DEPTH} levels")
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [clean_json(item, depth + 1, text) for item in value]
    if isinstance(value, dict):
        return {text(key): clean_json(item, depth + 1, text) for key, item in value.items()}
    # Python's json reads NaN, Infinity and literals like 1e999 (infinite as a
    # float), which the databases' JSON types refuse when the run is recorded.
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultRefused("the action's result holds a number JSON cannot carry (NaN or Infinity)")
    return value


MAX_RESULT_DEPTH = 200


def _checked_result(result_json, request, common):
    if len(result_json) > request.max_result_bytes or len(clean_text(result_json).encode()) > request.max_result_bytes:
        return _error("OUTPUT_LIMIT_EXCEEDED", f"the result is over the limit of {request.max_result_bytes} bytes", **common)
    try:
        result = clean_json(json.loads(result_json))
    except ResultRefused as error:
        return _error("PLUGIN_ERROR", str(error), **common)
    except (ValueError, RecursionError):
        return _error("PLUGIN_ERROR", "the action's result is not valid JSON", **common)
    return RunResult(status="success", result_json=json.dumps(result, ensure_ascii=False, separators=(",", ":")), **common)


def _rejection_details(details, redactor):
    """The details of a rejection, each string cleaned and redacted like the
    child's other texts; None when there are none, or when they are over
    MAX_DETAILS_CHARS (cutting JSON would break it, and the message still
    says what is wrong)."""
    if details is None:
        return None
    try:
        cleaned = clean_json(details, text=lambda value: redactor.text(clean_text(value)))
    except ResultRefused:
        return None
    encoded = json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))
    return cleaned if len(encoded) <= MAX_DETAILS_CHARS else None


def _capped_text(value, limit, redactor):
    """Text from the child, redacted before it is cut: a cut of the raw text
    could keep the start of a secret, which redaction no longer recognises.
    Its ends are trimmed too, for the child may have cut it already."""
    return redactor.trim_fragments(redactor.text(clean_text(value)))[:limit]


def _capped_logs(lines, request, redactor, cut_by_child):
    """The host's own caps on log lines and bytes (the child's claim to have
    capped is not trusted), applied to redacted lines as in _capped_text.
    A child that capped its logs cut its last line."""
    if not isinstance(lines, list):
        return [], False
    kept, size, last = [], 0, len(lines) - 1
    for index, line in enumerate(lines[: request.max_log_lines]):
        text = redactor.text(clean_text(line))
        if cut_by_child and index == last:
            text = redactor.trim_fragments(text)
        encoded = len(text.encode())
        if size + encoded > request.max_log_bytes:
            room = request.max_log_bytes - size
            if room > 0:
                kept.append(text.encode()[:room].decode("utf-8", "ignore"))
            return kept, True
        kept.append(text)
        size += encoded
    return kept, len(lines) > request.max_log_lines
