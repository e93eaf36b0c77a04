"""Fixtures shared by the egress tests (pure Python, no Django).

Network safety: every test talks only to servers it starts on 127.0.0.1.
Resolvers are fakes.  The autouse ``network_guard`` fixture makes any socket
connect() to a destination other than 127.0.0.1, and any real getaddrinfo()
of a non-literal name, fail the test loudly.
"""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from .helpers import LOCAL

# ---------------------------------------------------------------------------
# Network guard
# ---------------------------------------------------------------------------


class _ConnectLog:
    def __init__(self):
        self.targets = []


@pytest.fixture(autouse=True)
def network_guard(monkeypatch):
    """Fail the test if anything tries to reach an address other than 127.0.0.1."""
    log = _ConnectLog()
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        log.targets.append(host)
        if host != LOCAL:
            raise AssertionError(f"test attempted to connect to {host!r}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in (LOCAL, None):
            raise AssertionError(f"test attempted a real DNS lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: (_ for _ in ()).throw(AssertionError("connect_ex")))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return log


# ---------------------------------------------------------------------------
# Test HTTP(S) servers on 127.0.0.1 on 127.0.0.1
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


def _start_server(ssl_context=None):
    server = _Server((LOCAL, 0), _Handler)
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def server():
    srv, thread = _start_server()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """HTTPS server with a self-signed certificate for allowed.test.

    Yields (port, client SSL context trusting that certificate, SNI names seen).
    """
    if shutil.which("openssl") is None:
        pytest.skip("openssl not available")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=allowed.test", "-addext", "subjectAltName=DNS:allowed.test"],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(cert), str(key))
    sni_seen = []
    server_ctx.sni_callback = lambda sslsock, name, ctx: sni_seen.append(name)
    srv, _thread = _start_server(server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield srv.server_address[1], client_ctx, sni_seen
    srv.shutdown()
    srv.server_close()
