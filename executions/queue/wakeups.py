"""Wake a waiting process instead of making it poll.

A process that waits (a queue's workers for new runs, a web request for its
run to end) binds a unix datagram socket under WAKEUP_DIR named after what it
waits for; whoever makes that thing happen sends one byte to every socket
with that name. A wake-up lost on the way (a full buffer, a node down) only
costs the waiter its fallback poll interval, so correctness never depends on
it — only latency and idle CPU do.

Across nodes (REDIS_URL set), every wake-up is also published on Redis, and
each process that waits keeps one subscriber (a thread, a greenlet under
gevent) that passes what other nodes publish to its own sockets: a run that
ends on node B wakes its caller on node A at once, not at A's next poll.
"""

import glob
import itertools
import logging
import os
import select
import socket
import struct
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)
CHANNEL_PREFIX = "wakeup:"
# A relay whose subscription broke (Redis restarted) subscribes again after this long.
RESUBSCRIBE_SECONDS = 1.0


def _directory():
    path = settings.WAKEUP_DIR
    os.makedirs(path, exist_ok=True)
    return path


_serial = itertools.count()


class Waiter:
    """A socket to be woken through, for one topic, in this process. Where
    none can be bound (a path over the 108-byte limit), it just sleeps."""

    def __init__(self, topic):
        relay_other_nodes_wakeups()
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
    """Wake every waiter on `topic`, on this node and (with REDIS_URL) on the
    others; never raises."""
    _wake_here(topic)
    if settings.REDIS_URL:
        try:
            _publisher().publish(CHANNEL_PREFIX + topic, _node())
        except redis.RedisError:
            pass  # the other nodes' waiters find out at their next poll


def _wake_here(topic, owner="*"):
    """Send to this node's sockets on `topic` (of every process, or of the
    `owner` pattern's)."""
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for path in glob.glob(os.path.join(_directory(), f"{glob.escape(topic)}.{owner}.sock")):
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


def _node():
    """What tells one node's wake-ups from another's: the host and the
    folder of its sockets (nodes of one host have folders of their own)."""
    return f"{socket.gethostname()}:{settings.WAKEUP_DIR}"


_publishers = {}


def _publisher():
    """This process's Redis client (one per process: a client must not cross a fork)."""
    client = _publishers.get(os.getpid())
    if client is None:
        _publishers.clear()
        client = _publishers[os.getpid()] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    return client


_relay_pid = None


def relay_other_nodes_wakeups():
    """Start this process's relay of the other nodes' wake-ups to its own
    sockets, once per process (a forked child starts its own if it waits)."""
    global _relay_pid
    if not settings.REDIS_URL or _relay_pid == os.getpid():
        return
    _relay_pid = os.getpid()
    threading.Thread(target=_relay, args=(settings.REDIS_URL,), name="wakeup-relay", daemon=True).start()


def _relay(url):
    owner = f"{os.getpid()}-*"
    while True:
        try:
            subscription = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
            subscription.psubscribe(CHANNEL_PREFIX + "*")
            for message in subscription.listen():
                if message["data"].decode() != _node():  # this node's were sent here directly
                    _wake_here(message["channel"].decode()[len(CHANNEL_PREFIX):], owner)
        except redis.RedisError:
            logger.warning("wake-ups from other nodes are not relayed for now: Redis is unreachable", exc_info=True)
            time.sleep(RESUBSCRIBE_SECONDS)


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
