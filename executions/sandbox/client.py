"""The host side of the sandbox: start a fork-server for this process's slot
and run one action at a time through it.

`ForkServerClient.run(RunRequest, egress_handler) -> RunResult` is the one
interface the rest of the service uses. Standard library only, so benchmarks
and tests can drive it without Django.
"""

import fcntl
import hashlib
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from . import protocol

FORKSERVER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forkserver.py")
READY_TIMEOUT_SECONDS = 20
# How long past its own deadline the host waits for the fork-server's report
# before declaring it stuck and replacing it.
REPORT_GRACE_SECONDS = 5


class SandboxUnavailable(Exception):
    """The sandbox cannot run plugins here: a required layer is missing, or
    the fork-server would not start. Runs are refused (fail closed)."""


@dataclass
class RunRequest:
    execution_id: str
    files: dict
    entrypoint: str
    handler: str
    params: object
    timeout_ms: int
    memory_bytes: int
    secrets: dict = field(default_factory=dict)
    actor_id: str = ""
    max_result_bytes: int = 1024 * 1024
    max_log_bytes: int = 64 * 1024


@dataclass
class RunResult:
    status: str  # success | error | timeout
    error_type: str = ""
    message: str = ""
    traceback: str = ""
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
    return float(value) if isinstance(value, (int, float)) and value >= 0 else 0.0


def _error(error_type, message, status="error", **kwargs):
    return RunResult(status=status, error_type=error_type, message=message, **kwargs)


class SlotLock:
    """One slot per fork-server on a node: its uid and cgroup belong to it
    alone, so concurrent runs never share a uid or a cgroup."""

    def __init__(self, lock_dir, slots):
        os.makedirs(lock_dir, exist_ok=True)
        for index in range(slots):
            handle = open(os.path.join(lock_dir, f"slot-{index}.lock"), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.index = index
            self.handle = handle
            return
        raise SandboxUnavailable(f"all {slots} sandbox slots on this node are taken")

    def release(self):
        self.handle.close()


class ForkServerClient:
    def __init__(self, *, lock_dir, slots=64, uid_base=200000, required_layers=(), python=None):
        self.lock_dir = lock_dir
        self.slots = slots
        self.uid_base = uid_base
        self.required_layers = tuple(required_layers)
        self.python = python or os.path.realpath(sys.executable)
        self.process = None
        self.control = None
        self.slot = None
        self.layers = {}
        self.pid = None
        self.run_counter = 0

    # -- life cycle -----------------------------------------------------------

    def start(self):
        if self.slot is None:
            self.slot = SlotLock(self.lock_dir, self.slots)
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        seccomp_spec = importlib.util.find_spec("pyseccomp")
        # Named after the lock directory too: two services on one host (or a
        # test run beside a dev server) must never share a cgroup.
        service = hashlib.sha256(os.path.realpath(self.lock_dir).encode()).hexdigest()[:10]
        config = {
            "slot": f"{service}-slot-{self.slot.index}",
            "uid": self.uid_base + self.slot.index,
            "gid": self.uid_base + self.slot.index,
            "controlFd": server_end.fileno(),
            "seccompModulePath": os.path.dirname(seccomp_spec.origin) if seccomp_spec else None,
        }
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", "-B", FORKSERVER_PATH, json.dumps(config)],
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
        """Run one action; never raises for anything the plugin does."""
        self.ensure_started()
        self.run_counter += 1
        run_id = self.run_counter
        host_channel, child_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            header = json.dumps(
                {"runId": run_id, "timeoutMs": request.timeout_ms, "memoryBytes": request.memory_bytes}
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

    @staticmethod
    def _request_frame(request):
        return protocol.encode_frame(
            {
                "executionId": request.execution_id,
                "actorId": request.actor_id,
                "files": request.files,
                "entrypoint": request.entrypoint,
                "handler": request.handler,
                "params": request.params,
                "secrets": request.secrets,
                "maxResultBytes": request.max_result_bytes,
                "maxLogBytes": request.max_log_bytes,
            }
        )

    def _exchange(self, channel, outgoing, request, egress_handler, started, run_id):
        """Feed the child its request, serve its egress requests, and collect
        its answer. A run is answered as soon as the child has sent its result
        and shut its channel; the fork-server's report of the reaped child is
        awaited only when there is no such answer (crash, kill, timeout)."""
        # The child is untrusted: cap what we are willing to buffer from it.
        reader = protocol.FrameReader(max_frame_bytes=request.max_result_bytes * 2 + request.max_log_bytes * 8 + (1 << 20))
        deadline = started + request.timeout_ms / 1000 + REPORT_GRACE_SECONDS
        outcome = None
        report = None
        channel_open = True
        overflow = False
        while channel_open or (report is None and outcome is None):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                return _error("WORKER_CRASHED", "the sandbox stopped answering; it was replaced")
            readers = [self.control] if report is None else []
            if channel_open:
                readers.append(channel)
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
            if channel in readable:
                try:
                    data = channel.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    data = b""
                if not data:
                    channel_open = False
                    continue
                reader.feed(data)
                try:
                    for frame in reader.frames():
                        if not isinstance(frame, dict):
                            continue
                        if frame.get("op") == "result":
                            outcome = frame
                        elif frame.get("op") == "http":
                            reply = egress_handler(frame) if egress_handler else {"ok": False, "kind": "denied", "message": "network access is not enabled"}
                            outgoing += protocol.encode_frame(reply)
                except (protocol.ProtocolError, ValueError):
                    overflow = True
                    channel_open = False
        wall_ms = (time.monotonic() - started) * 1000
        return self._interpret(report, outcome, overflow, request, wall_ms)

    @staticmethod
    def _interpret(report, outcome, overflow, request, wall_ms):
        if report is None:
            # Answered early: the child's own account of its usage is all
            # there is yet; it only concerns the plugin's own run.
            usage = outcome.get("usage") if isinstance(outcome.get("usage"), dict) else {}
            report = {"exitCode": 0, "cpuMs": usage.get("cpuMs"), "maxRssBytes": usage.get("maxRssBytes")}
        measures = {
            "wall_ms": wall_ms,
            "cpu_ms": _non_negative(report.get("cpuMs")),
            "max_rss_bytes": int(_non_negative(report.get("maxRssBytes"))),
        }
        seconds = request.timeout_ms / 1000
        if report.get("timedOut") or report.get("signal") == signal.SIGXCPU:
            return _error("TIMEOUT", f"the action did not finish within {seconds:g} s", status="timeout", **measures)
        if report.get("oomKilled"):
            return _error("MEMORY_LIMIT_EXCEEDED", f"the action went over its memory limit of {request.memory_bytes >> 20} MiB", **measures)
        if overflow:
            return _error("OUTPUT_LIMIT_EXCEEDED", "the action sent more output than the limits allow", **measures)
        if report.get("signal"):
            name = signal.Signals(report["signal"]).name if report["signal"] in signal.Signals._value2member_map_ else str(report["signal"])
            return _error("WORKER_CRASHED", f"the sandboxed process was killed by {name}", **measures)
        if outcome is None or report.get("exitCode") != 0:
            return _error("WORKER_CRASHED", f"the sandboxed process exited (code {report.get('exitCode')}) without a result", **measures)
        logs = [str(line) for line in outcome.get("logs", [])] if isinstance(outcome.get("logs"), list) else []
        common = dict(logs=logs, logs_truncated=bool(outcome.get("logsTruncated")), **measures)
        if outcome.get("status") == "success" and isinstance(outcome.get("resultJson"), str):
            if len(outcome["resultJson"].encode()) > request.max_result_bytes:
                return _error("OUTPUT_LIMIT_EXCEEDED", "the result is over the size limit", **common)
            try:
                json.loads(outcome["resultJson"])
            except ValueError:
                return _error("PLUGIN_ERROR", "the action's result is not valid JSON", **common)
            return RunResult(status="success", result_json=outcome["resultJson"], **common)
        error_type = outcome.get("errorType")
        if error_type not in {"PLUGIN_ERROR", "MEMORY_LIMIT_EXCEEDED", "OUTPUT_LIMIT_EXCEEDED", "SANDBOX_VIOLATION", "NETWORK_ERROR"}:
            error_type = "PLUGIN_ERROR"
        return _error(error_type, str(outcome.get("message", ""))[:4000], traceback=str(outcome.get("traceback", ""))[:8192], **common)

