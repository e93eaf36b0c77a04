"""Fixtures shared by the egress tests (pure Python, no Django).

Network safety: every test talks only to servers it starts on 127.0.0.1.
Resolvers are fakes.  The autouse ``network_guard`` fixture makes any socket
connect() to a destination other than 127.0.0.1, and any real getaddrinfo()
of a non-literal name, fail the test loudly.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from .helpers import LOCAL, start_local_server

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


@pytest.fixture(scope="module")
def server():
    srv, thread = start_local_server()
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
    srv, _thread = start_local_server(server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield srv.server_address[1], client_ctx, sni_seen
    srv.shutdown()
    srv.server_close()
