"""HTTP(S) connections pinned to a checked address, the default TLS context
and the watchdog that enforces the wall-clock deadline."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from typing import Optional, Sequence

from .addresses import IPAddress

__all__ = ["PinnedHTTPConnection", "PinnedHTTPSConnection", "Watchdog", "default_ssl_context"]


class _PinnedMixin:
    """Connects to pre-checked addresses only; never resolves ``self.host``."""

    def _init_pinned(self, addresses: Sequence[IPAddress], deadline: float) -> None:
        if not addresses:
            raise ValueError("no addresses to connect to")
        self._pinned_addresses = list(addresses)
        self._deadline = deadline
        self._abort_lock = threading.Lock()
        self._raw_sock: Optional[socket.socket] = None
        self.connected_ip: Optional[IPAddress] = None

    def _track(self, sock: Optional[socket.socket]) -> None:
        with self._abort_lock:
            self._raw_sock = sock

    def _discard(self, sock: socket.socket) -> None:
        self._track(None)
        sock.close()

    def _open_pinned_socket(self) -> socket.socket:
        last_error: Optional[BaseException] = None
        for ip in self._pinned_addresses:
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("egress deadline exceeded")
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            self._track(sock)
            try:
                sock.settimeout(remaining)
                sock.connect((str(ip), self.port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                self._discard(sock)
                last_error = exc
                continue
            self.connected_ip = ip
            return sock
        assert last_error is not None
        raise last_error

    def abort(self) -> None:
        """Called from the watchdog thread: unblock any pending socket I/O."""
        with self._abort_lock:
            sock = self._raw_sock
            if sock is not None:
                try:
                    # Base-class shutdown on the fd; bypasses SSLSocket state.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._track(None)
        super().close()


class PinnedHTTPConnection(_PinnedMixin, http.client.HTTPConnection):
    """HTTPConnection whose ``connect()`` uses the checked IP, not DNS."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[IPAddress], deadline: float, timeout: float):
        http.client.HTTPConnection.__init__(self, host, port, timeout=timeout)
        self._init_pinned(addresses, deadline)

    def connect(self) -> None:
        self.sock = self._open_pinned_socket()


class PinnedHTTPSConnection(_PinnedMixin, http.client.HTTPSConnection):
    """HTTPSConnection: TCP to the checked IP, SNI + cert check on ``host``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        addresses: Sequence[IPAddress],
        deadline: float,
        timeout: float,
        context: ssl.SSLContext,
    ):
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeout, context=context)
        self._init_pinned(addresses, deadline)

    def connect(self) -> None:
        sock = self._open_pinned_socket()
        try:
            tls = self._context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            self._discard(sock)
            raise
        self._track(tls)  # the watchdog can now interrupt the handshake
        try:
            tls.do_handshake()
        except BaseException:
            self._discard(tls)
            raise
        self.sock = tls


_default_context: Optional[ssl.SSLContext] = None
_default_context_lock = threading.Lock()


def default_ssl_context() -> ssl.SSLContext:
    global _default_context
    with _default_context_lock:
        if _default_context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            _default_context = context
        return _default_context


class Watchdog:
    """Enforces the wall-clock deadline by shutting the socket down."""

    def __init__(self, conn: _PinnedMixin, seconds: float):
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        self._conn.abort()

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()
