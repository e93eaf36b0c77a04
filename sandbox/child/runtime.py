"""What runs inside the sandboxed child: load the plugin from memory, call one
action, send the outcome back on the channel.

Standard library only. By the time `serve_one_run` is called every isolation
layer is in place; nothing here is trusted by the host, which re-checks sizes
and redacts what comes back.
"""

import base64
import errno
import importlib.machinery
import io
import json
import marshal
import os
import sys
from dataclasses import dataclass

from . import protocol

ENTRYPOINT_MODULE = "plugin"
# This package's top-level name where it runs: `child` in the fork-server.
SANDBOX_PACKAGE = __name__.partition(".")[0]
# Set by the fork-server: where the parent of the vendored trees ("vendored")
# and the operator's shared site-packages ("shared") are, when configured.
package_roots = {}


class EgressDenied(Exception):
    """The egress broker refused the request (policy: domain, address, rate)."""


class EgressError(Exception):
    """The request was allowed but failed on the network side (retryable)."""


class InvalidParams(Exception):
    """Raised by `ctx.reject`: the caller's params are wrong, the plugin is
    not. The run ends as VALIDATION_ERROR, which is neither retried nor held
    against the plugin."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = str(message)
        self.details = details


class HttpResponse:
    def __init__(self, status_code, headers, content, url):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def ok(self):
        return 200 <= self.status_code < 400

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)

    def raise_for_status(self):
        if self.status_code >= 400:
            raise EgressError(f"HTTP {self.status_code} from {self.url}")


class HttpClient:
    """`ctx.http`: every request is a frame to the host's egress broker."""

    def __init__(self, channel):
        self._channel = channel

    def request(self, method, url, *, headers=None, params=None, json=None, data=None, timeout=None):
        if params:
            from urllib.parse import urlencode

            url = url + ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        headers = dict(headers or {})
        body = None
        if json is not None:
            body = _json_dumps(json).encode()
            headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else bytes(data)
        protocol.send_frame(
            self._channel,
            {
                "op": "http",
                "method": str(method).upper(),
                "url": str(url),
                "headers": {str(k): str(v) for k, v in headers.items()},
                "body": base64.b64encode(body).decode() if body is not None else None,
                "timeout": timeout,
            },
        )
        reply = protocol.recv_frame(self._channel)
        if not reply.get("ok"):
            error_class = EgressDenied if reply.get("kind") == "denied" else EgressError
            raise error_class(reply.get("message", "request refused"))
        return HttpResponse(reply["status"], reply["headers"], base64.b64decode(reply["body"]), reply["url"])

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)


class LogBuffer:
    """Captured log lines, capped in bytes; what is cut is marked as cut."""

    def __init__(self, max_bytes):
        self.lines = []
        self.size = 0
        self.max_bytes = max_bytes
        self.truncated = False

    def add(self, text):
        if self.truncated:
            return
        encoded = len(text.encode("utf-8", errors="replace"))
        if self.size + encoded > self.max_bytes:
            room = self.max_bytes - self.size
            if room > 0:
                self.lines.append(text.encode("utf-8", errors="replace")[:room].decode("utf-8", errors="ignore"))
            self.truncated = True
            return
        self.lines.append(text)
        self.size += encoded


class LogStream(io.TextIOBase):
    """sys.stdout/sys.stderr of the plugin: printed lines become log lines."""

    def __init__(self, buffer):
        self._buffer = buffer
        self._pending = ""

    def writable(self):
        return True

    def write(self, text):
        self._pending += str(text)
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._buffer.add(line)
        if len(self._pending) > 65536:
            self._buffer.add(self._pending)
            self._pending = ""
        return len(text)

    def flush(self):
        if self._pending:
            self._buffer.add(self._pending)
            self._pending = ""


# A dataclass, not a NamedTuple: `typing` would grow the fork-server, and
# with it the cost of every fork.
@dataclass(frozen=True)
class Scratch:
    """The run's private writable directory (a tmpfs of `size_bytes`)."""

    path: str
    size_bytes: int


# What a write into a full scratch space fails with: no room left (bytes or
# files), or a file over the size limit.
SCRATCH_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class Context:
    def __init__(self, channel, secrets, logs, execution_id, actor_id, attempt=1, scratch_dir=None):
        self.secrets = dict(secrets)
        self.http = HttpClient(channel)
        self.execution_id = execution_id
        self.actor_id = actor_id
        # 1 for the first run of an execution, 2 for its first retry, …
        self.attempt = attempt
        # The run's own empty directory (also TMPDIR), gone when it ends.
        self.scratch_dir = scratch_dir
        self._logs = logs

    def log(self, *args):
        self._logs.add(" ".join(str(arg) for arg in args))

    def reject(self, message, details=None):
        """Refuse the params: the caller gets 400 VALIDATION_ERROR with
        `message` and `details` (any JSON value)."""
        if details is not None:
            # Checked here, in the plugin's frame, so that details that are
            # not JSON are the plugin's error rather than a broken answer.
            try:
                _json_dumps(details)
            except (TypeError, ValueError) as error:
                raise TypeError(f"ctx.reject: details must be JSON-serialisable: {error}") from None
        raise InvalidParams(message, details)


class InMemoryPluginFinder:
    """Imports the plugin's own modules from the sources sent on the channel:
    plugin code never touches the child's (read-only) filesystem."""

    def __init__(self, modules, entrypoint):
        self.modules = {}
        for path, source in modules.items():
            if not path.endswith(".py"):
                continue
            parts = path[:-3].split("/")
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            name = ENTRYPOINT_MODULE if path == entrypoint else ".".join(parts)
            if name:
                self.modules[name] = (source, is_package, path)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.modules:
            return None
        _, is_package, filename = self.modules[fullname]
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=f"<plugin>/{filename}", is_package=is_package)
        if is_package:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        body, _, filename = self.modules[module.__name__]
        module.__file__ = f"<plugin>/{filename}"
        if "code" in body:
            code = marshal.loads(base64.b64decode(body["code"]))
        else:
            code = compile(body["source"], module.__file__, "exec")
        exec(code, module.__dict__)


def _package_paths(tree):
    """The run's own vendored tree (named by the host: its parent cannot be
    listed) and then the operator's shared set, after the standard library."""
    paths = []
    if tree and "vendored" in package_roots:
        paths.append(f"{package_roots['vendored']}/{tree}")
    if "shared" in package_roots:
        paths.append(package_roots["shared"])
    return paths


def _missing_module_hint(error):
    # Upload refuses imports nothing can satisfy, so a module missing at run
    # time is usually the operator's shared set, absent on this node.
    if not isinstance(error, ModuleNotFoundError):
        return ""
    if "shared" not in package_roots:
        return " (this node has no shared packages: SANDBOX_SHARED_PACKAGES is unset, or missing here)"
    return " (not in the standard library, the plugin's vendored wheels or this node's shared packages)"


def _json_dumps(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plugin_traceback(error, limit_bytes=8192):
    import traceback

    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<plugin>")]
    text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(error), error))
    return text[-limit_bytes:]


def _call_handler(handler, params, ctx):
    result = handler(params, ctx)
    if hasattr(result, "__await__"):
        # asyncio is imported only for async handlers: it maps OpenSSL, and a
        # larger fork-server makes every run's fork slower.
        import asyncio

        async def settle():
            return await result

        return asyncio.run(settle())
    return result


def execute(request, channel, scratch=None):
    """Run the requested action and return the outcome frame (never raises)."""
    if scratch is not None:
        os.environ["TMPDIR"] = scratch.path
    logs = LogBuffer(request["maxLogBytes"])
    sys.stdout = sys.stderr = LogStream(logs)
    sys.path[:] = [p for p in sys.path if "site-packages" not in p and not p.startswith(tuple(package_roots.values()))]
    sys.path += _package_paths(request.get("packageTree"))
    sys.argv = ["plugin"]
    outcome = {"op": "result"}
    # The sandbox's own modules are loaded and bound already; forgetting their
    # names lets a plugin module called `child`, `runtime` or `protocol` be the
    # plugin's own instead of ours.
    for name in [name for name in sys.modules if name.partition(".")[0] == SANDBOX_PACKAGE]:
        del sys.modules[name]
    try:
        sys.meta_path.insert(0, InMemoryPluginFinder(request["modules"], request["entrypoint"]))
        module = __import__(ENTRYPOINT_MODULE)
        handler = getattr(module, request["handler"], None)
        if not callable(handler):
            raise LookupError(f"handler {request['handler']!r} is not defined by the plugin")
        ctx = Context(channel, request.get("secrets") or {}, logs, request["executionId"], request.get("actorId", ""),
                      request.get("attempt", 1), scratch_dir=scratch.path if scratch else None)
        result = _call_handler(handler, request["params"], ctx)
        try:
            encoded = _json_dumps(result)
        except (TypeError, ValueError) as error:
            raise TypeError(f"the action returned a value that is not JSON-serialisable: {error}") from None
        if len(encoded.encode()) > request["maxResultBytes"]:
            outcome.update(
                status="error",
                errorType="OUTPUT_LIMIT_EXCEEDED",
                message=f"result is {len(encoded.encode())} bytes, over the limit of {request['maxResultBytes']}",
            )
        else:
            outcome.update(status="success", resultJson=encoded)
    except MemoryError:
        outcome.update(status="error", errorType="MEMORY_LIMIT_EXCEEDED", message="the action ran out of memory")
    except EgressDenied as error:
        outcome.update(status="error", errorType="SANDBOX_VIOLATION", message=f"egress refused: {error}")
    except EgressError as error:
        outcome.update(status="error", errorType="NETWORK_ERROR", message=str(error))
    except InvalidParams as error:
        # No traceback: where the plugin noticed is none of the caller's business.
        outcome.update(status="error", errorType="VALIDATION_ERROR", message=error.message[:2000], details=error.details)
    except BaseException as error:  # the plugin's failure, whatever it raised
        message = f"{type(error).__name__}: {error}{_missing_module_hint(error)}"
        if scratch is not None and isinstance(error, OSError) and error.errno in SCRATCH_FULL_ERRNOS:
            message = f"the run's scratch space ({scratch.size_bytes / (1 << 20):g} MiB) is full: {message}"
        outcome.update(
            status="error",
            errorType="PLUGIN_ERROR",
            message=message[:2000],
            traceback=_plugin_traceback(error),
        )
    sys.stdout.flush()
    outcome["logs"] = logs.lines
    outcome["logsTruncated"] = logs.truncated
    return outcome


WARM_UP_SOURCE = "def warm_up(params, ctx):\n    ctx.log('warm')\n    return {'ok': [params]}\n"
# Compiled once, in the fork-server: the warm-up takes the path of a real
# run's bytecode (unmarshal), and no child pays for a compile.
WARM_UP_REQUEST = {
    "executionId": "warm-up",
    "modules": {"plugin.py": {"code": base64.b64encode(marshal.dumps(compile(WARM_UP_SOURCE, "<plugin>/plugin.py", "exec"))).decode()}},
    "entrypoint": "plugin.py",
    "handler": "warm_up",
    "params": {"warm": True},
    "maxResultBytes": 1024,
    "maxLogBytes": 1024,
}


def warm_up():
    """Run a built-in action once, while the child waits for its run.

    Writing to the fork-server's pages is what makes a forked child slow: the
    first touch of each copies it. Going through the run's code path here,
    before the run is assigned, takes those copies off the run's time. The
    warm-up leaves nothing behind that the plugin could see.
    """
    saved = sys.stdout, sys.stderr, list(sys.meta_path)
    protocol.encode_frame(execute(WARM_UP_REQUEST, channel=None))
    sys.stdout, sys.stderr = saved[0], saved[1]
    sys.meta_path[:] = saved[2]
    sys.modules.pop(ENTRYPOINT_MODULE, None)


# Written to the fork-server once the answer is on the channel.
DONE = b"done"


def serve_one_run(channel, done, scratch=None):
    """Read the run request, execute it, reply, and leave without cleanup.

    The channel is shut down and DONE written on `done` (the child's socket
    to the fork-server) before exiting, so that the host has its answer and
    the fork-server knows the run is over while the kernel is still tearing
    this process down.
    """
    try:
        request = protocol.recv_frame(channel)
        outcome = execute(request, channel, scratch)
        try:
            protocol.send_frame(channel, outcome)
        except MemoryError:
            protocol.send_frame(channel, {"op": "result", "status": "error", "errorType": "MEMORY_LIMIT_EXCEEDED", "message": "the action ran out of memory"})
        channel.shutdown(2)
        done.send(DONE)
    except BaseException:
        os._exit(3)
    os._exit(0)
