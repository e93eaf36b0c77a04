"""Refuse at once what this web process could only serve late.

A web process works on one request at a time per core it gets; requests it
accepted beyond that wait inside it for CPU, where no client can see why
and every one of them gets slower. So each process counts the requests it is
working on and refuses a new one with QUEUE_FULL and Retry-After as soon as
WEB_ACTIVE_REQUEST_LIMIT are in progress: the refusal costs a fraction of a
millisecond and tells the caller when to come back, and the requests already
admitted keep their latency.

A synchronous /execute waiting for its run does not count while it waits
(`waiting()`): it holds no CPU then, only a greenlet. The middleware that
applies the limit is core.middleware.LoadSheddingMiddleware.
"""

import contextlib
import threading


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


_working = _Working()


def admit_request(limit):
    """True, counted in, if fewer than `limit` requests are being worked on."""
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
        with _working.lock:
            _working.count += 1
