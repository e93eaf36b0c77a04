"""Refuse at once what this web process could only serve late.

Two signs that a web process has more requests than it can serve soon:
- it is working on WEB_ACTIVE_REQUEST_LIMIT requests already (a caller
  waiting for its run does not count while it waits, `waiting()`: it holds
  no CPU then, only a greenlet);
- its event loop runs late: a gevent process switches between greenlets
  only where one blocks, so when CPU is short, requests queue unseen in the
  kernel's socket buffers. A request is refused when the loop has been late
  by more than WEB_MAX_LAG_MS lately (`start_lag_monitor`'s moving average)
  and the request itself has waited in the backlog (WAITED_SECONDS since
  its bytes arrived, `waited_seconds`: the kernel's clock of the
  connection). The first alone would refuse a lone request that arrives
  just after a burst, while the average still remembers it; the second
  alone would refuse the request that arrived during one slow statement.
Either way the refusal (QUEUE_FULL with Retry-After, by
core.middleware.ShedExcessRequests, before Django) costs a fraction of a millisecond
and tells the caller when to come back, and the requests already admitted
keep their latency.
"""

import contextlib
import socket
import struct
import threading
import time

# How often the monitor looks at the loop, and the weight of each look in
# the moving average: one late look (a long statement, a WAL checkpoint) is
# not a shortage of CPU, three in a row are.
LAG_INTERVAL_SECONDS = 0.01
LAG_WEIGHT = 0.3
# A request is part of the backlog a late process sheds once it has waited
# this long: more than the kernel's clock tick (4 ms at HZ=250) a lone
# request may show, less than the lag threshold, so that under overload the
# refusals go out as soon as the backlog is seen (300/s offered, 60 s: with
# the threshold itself here, refusals took p50/p99 56/796 ms; with 10 ms,
# 44/390 ms).
WAITED_SECONDS = 0.01


class _Working:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    def enter(self, limit):
        """Count one more request in, unless `limit` (0: none) are in already."""
        with self.lock:
            if limit and self.count >= limit:
                return False
            self.count += 1
            return True

    def leave(self):
        with self.lock:
            self.count -= 1


class _Lag:
    """The loop's recent lateness in seconds, a moving average of its looks."""

    def __init__(self):
        self.seconds = 0.0
        self.thread = None

    def watch(self):
        while True:
            began = time.monotonic()
            time.sleep(LAG_INTERVAL_SECONDS)
            late = max(0.0, time.monotonic() - began - LAG_INTERVAL_SECONDS)
            self.seconds += LAG_WEIGHT * (late - self.seconds)


_working = _Working()
_lag = _Lag()


def start_lag_monitor():
    """Watch this process's loop (a greenlet under gevent's monkey-patching).
    Called once per web worker process; without it the lag is never seen."""
    if _lag.thread is None:
        _lag.thread = threading.Thread(target=_lag.watch, name="loop-lag", daemon=True)
        _lag.thread.start()


def loop_lag_seconds():
    return _lag.seconds


# struct tcp_info (linux/tcp.h): tcpi_last_data_recv, milliseconds since the
# connection last received data, follows 8 one-byte fields and 11 32-bit ones.
_TCP_INFO_SIZE = 104
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52


def waited_seconds(sock):
    """How long ago the last bytes of this connection arrived: for a request
    just parsed, how long it sat in socket buffers and in this process
    before being looked at, wherever it waited. 0 for a socket that is not
    TCP (nothing to read it from)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except (AttributeError, OSError):
        return 0.0
    (milliseconds,) = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)
    return milliseconds / 1000


def admit_request(limit, max_lag_seconds=0, sock=None):
    """True, counted in, unless `limit` requests are being worked on, or the
    loop has run more than `max_lag_seconds` late and this request (on
    `sock`) waited in the backlog (0: either check off)."""
    if max_lag_seconds and loop_lag_seconds() > max_lag_seconds and waited_seconds(sock) > WAITED_SECONDS:
        return False
    return _working.enter(limit)


def request_done():
    _working.leave()


@contextlib.contextmanager
def waiting():
    """Not counted as working while inside: the request only waits."""
    _working.leave()
    try:
        yield
    finally:
        _working.enter(0)
