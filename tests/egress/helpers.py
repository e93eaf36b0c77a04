"""Plain helpers shared by the egress tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from egress.policy import EgressPolicy

LOCAL = "127.0.0.1"


class FakeResolver:
    """host -> list of IPs (or a callable producing them per call)."""

    def __init__(self, mapping=None):
        self.mapping = {
            "allowed.test": [LOCAL],
            "api.allowed.test": [LOCAL],
            "other.test": [LOCAL],
        }
        self.mapping.update(mapping or {})
        self.calls = []

    def __call__(self, host, port):
        self.calls.append(host)
        answer = self.mapping.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if callable(answer):
            return answer()
        return list(answer)


def local_policy(resolver=None, **overrides):
    settings = dict(
        allowed_domains=["allowed.test", "*.allowed.test"],
        permitted_addresses=frozenset({LOCAL}),
        allow_any_port=True,
        resolver=resolver or FakeResolver(),
        timeout_seconds=5,
    )
    settings.update(overrides)
    return EgressPolicy(**settings)


def no_dns(host, port):
    raise AssertionError(f"resolver must not be called (host={host!r})")


STRICT = EgressPolicy(allowed_domains=["allowed.test", "*.allowed.test"], resolver=no_dns)


def echo(resp):
    """The request as the test server's /echo route saw it."""
    data = json.loads(resp.body)
    data["headers"] = {k.lower(): v for k, v in data["headers"]}
    return data


# ---------------------------------------------------------------------------
# Test HTTP(S) servers on 127.0.0.1
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def server_bind(self):
        # Skip HTTPServer.server_bind's getfqdn() (a possible reverse DNS query).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port

    def handle_error(self, request, client_address):
        pass  # clients hanging up mid-response is expected in these tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", headers=(), content_length=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if content_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = parts.path

        if route == "/echo":
            payload = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            self._send(200, json.dumps(payload).encode(), [("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")])
        elif route == "/redirect":
            self._send(int(query.get("code", "302")), b"redirecting", [("Location", query["to"])])
        elif route == "/loop":
            self._send(302, b"", [("Location", "/loop")])
        elif route == "/big":
            n = int(query["n"])
            if query.get("mode") == "close":  # no Content-Length, body ends at close
                self._send(200, b"x" * n, content_length=False)
            elif query.get("mode") == "chunked":
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                remaining = n
                while remaining:
                    size = min(remaining, 1000)
                    self.wfile.write(b"%x\r\n" % size + b"y" * size + b"\r\n")
                    remaining -= size
                self.wfile.write(b"0\r\n\r\n")
            else:
                self._send(200, b"z" * n)
        elif route == "/lying-length":  # declares more than it sends
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"short")
        elif route == "/slow":
            time.sleep(float(query.get("delay", "3")))
            self._send(200, b"late")
        elif route == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            for _ in range(100):
                try:
                    self.wfile.write(b".")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def start_local_server(ssl_context=None):
    """The test server (routes above) on 127.0.0.1: -> (server, thread)."""
    server = _Server((LOCAL, 0), _Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread
