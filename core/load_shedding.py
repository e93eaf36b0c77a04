"""Refuse at once what this web process could only serve late.

Two signs that a web process has more requests than it can serve soon:
- it is working on WEB_ACTIVE_REQUEST_LIMIT requests already (a caller
  waiting for its run does not count while it waits, `waiting()`: it holds
  no CPU then, only a greenlet);
- its event loop runs late (`start_lag_monitor`): a gevent process switches
  between greenlets only where one blocks, so when CPU is short, requests
  queue unseen in the kernel's socket buffers and the loop's lateness is
  the only measure of that wait. Past WEB_MAX_LAG_MS, new requests are
  refused until it catches up.
Either way the refusal (QUEUE_FULL with Retry-After, by
core.middleware.ShedExcessRequests, before Django) costs a fraction of a millisecond
and tells the caller when to come back, and the requests already admitted
keep their latency.
"""

import contextlib
import threading
import time

# How often the monitor looks at the loop, and the weight of each look in
# the moving average: one late look (a long statement, a WAL checkpoint) is
# not a shortage of CPU, three in a row are.
LAG_INTERVAL_SECONDS = 0.01
LAG_WEIGHT = 0.3


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


def admit_request(limit, max_lag_seconds=0):
    """True, counted in, unless `limit` requests are being worked on or the
    loop runs more than `max_lag_seconds` late (0: either check off)."""
    if max_lag_seconds and _lag.seconds > max_lag_seconds:
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
