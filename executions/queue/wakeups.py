"""Wake a waiting process on this node instead of making it poll.

A process that waits (a queue's pusher for new tasks, a web request for its
run to end) binds a unix datagram socket under WAKEUP_DIR named after what it
waits for; whoever makes that thing happen sends one byte to every socket
with that name. A wake-up lost on the way (another node, a full buffer) only
costs the waiter its fallback poll interval, so correctness never depends on
it — only latency and idle CPU do.
"""

import glob
import itertools
import os
import select
import socket
import struct
import time

from django.conf import settings


def _directory():
    path = settings.WAKEUP_DIR
    os.makedirs(path, exist_ok=True)
    return path


_serial = itertools.count()


class Waiter:
    """A socket to be woken through, for one topic, in this process. Where
    none can be bound (a path over the 108-byte limit), it just sleeps."""

    def __init__(self, topic):
        self.path = os.path.join(_directory(), f"{topic}.{os.getpid()}-{next(_serial)}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.bind(self.path)
        except OSError:
            self.sock.close()
            self.sock = None
            return
        self.sock.setblocking(False)

    def wait(self, timeout):
        """Return when woken, or after `timeout` seconds; True if woken."""
        if self.sock is None:
            time.sleep(timeout)
            return False
        # poll, not select: a web worker may hold more than 1024 descriptors.
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        woken = bool(poller.poll(timeout * 1000))
        while woken:
            try:
                self.sock.recv(64)
            except BlockingIOError:
                break
        return woken

    def close(self):
        if self.sock is None:
            return
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wake(topic):
    """Wake every waiter on `topic` on this node; never raises."""
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for path in glob.glob(os.path.join(_directory(), glob.escape(topic) + ".*.sock")):
            try:
                sender.sendto(b"!", path)
            except (BlockingIOError, InterruptedError):
                continue  # its buffer is full: it has been woken already
            except (ConnectionRefusedError, FileNotFoundError):
                try:
                    os.unlink(path)  # its process is gone
                except OSError:
                    pass
            except OSError:
                continue
    finally:
        sender.close()


class SharedWaiter(Waiter):
    """A wake-up socket shared by several processes (a cluster's workers,
    which inherit it): each wake-up wakes one of those blocked in `take`,
    the kernel's datagram receive being an exclusive wait. A process killed
    while waiting holds no lock: the others go on."""

    def __init__(self, topic):
        super().__init__(topic)
        if self.sock is not None:
            # Blocking in the kernel's receive, bounded by SO_RCVTIMEO; the
            # flag belongs to the socket every holder shares.
            self.sock.setblocking(True)

    def take(self, timeout):
        """Wait for one wake-up, at most `timeout` seconds; True if taken."""
        if self.sock is None:
            time.sleep(timeout)
            return False
        seconds = int(timeout)
        self.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
        )
        try:
            self.sock.recv(64)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return False
        return True
