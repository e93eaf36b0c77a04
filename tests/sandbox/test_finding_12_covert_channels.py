"""Finding 12: two concurrent runs cannot signal each other through the files
they share.

Both see the same read-only standard library. A lock on one of its files
(flock, POSIX record locks, open-file-description locks) is visible to the
other run, and so are inotify and dnotify events on its directories: a
channel for a secret to leave a run that has no network. The runs of clients
A and B (different slots: different uids and organizations) try every one of
them at once; B must observe nothing of what A does.
"""

import os
import time

from tests.sandbox.helpers import STDLIB, host_intact, in_background

SHARED_FILE = os.path.join(STDLIB, "os.py")

# The lock and notification calls, common to both sides.
TOOLS = r"""
import fcntl
import signal
import struct
import time

F_OFD_GETLK, F_OFD_SETLK = 36, 37
IN_NONBLOCK = 0o4000
IN_ALL_EVENTS = 0xFFF

def lock_query(fd, command):
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (padded to 32 bytes)
    asked = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0) + bytes(4)
    return struct.unpack("hhqqi", fcntl.fcntl(fd, command, asked)[:28])[0]

def lock_take(fd, command):
    fcntl.fcntl(fd, command, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0) + bytes(4))
"""

SENDER = TOOLS + r"""
def attack(params, ctx):
    out = {}
    flock_fd = _os.open(params["file"], _os.O_RDONLY)
    posix_fd = _os.open(params["file"], _os.O_RDONLY)
    ofd_fd = _os.open(params["file"], _os.O_RDONLY)
    out["flock"] = attempt(fcntl.flock, flock_fd, fcntl.LOCK_EX)
    out["posix_lock"] = attempt(lock_take, posix_fd, fcntl.F_SETLK)
    out["ofd_lock"] = attempt(lock_take, ofd_fd, F_OFD_SETLK)
    deadline = time.monotonic() + params["seconds"]
    touched = 0
    while time.monotonic() < deadline:
        # What inotify and dnotify on the directory would report.
        for name in sorted(_os.listdir(params["dir"]))[:20]:
            path = _os.path.join(params["dir"], name)
            if name.endswith(".py"):
                with open(path, "rb") as handle:
                    handle.read(1)
                touched += 1
        time.sleep(0.02)
    out["touched"] = touched
    return out
"""

RECEIVER = TOOLS + r"""
def attack(params, ctx):
    seen = {"flock": 0, "posix_lock": 0, "ofd_lock": 0, "inotify": 0, "dnotify": 0}
    setup = {}
    fd = _os.open(params["file"], _os.O_RDONLY)
    inotify = c_call("inotify_init1", IN_NONBLOCK)
    setup["inotify_init1"] = inotify
    if not inotify["blocked"]:
        setup["inotify_add_watch"] = c_call("inotify_add_watch", inotify["ret"], params["dir"].encode(), IN_ALL_EVENTS)
    signal.signal(signal.SIGIO, lambda *_: seen.__setitem__("dnotify", seen["dnotify"] + 1))
    dir_fd = _os.open(params["dir"], _os.O_RDONLY)
    setup["dnotify"] = attempt(fcntl.fcntl, dir_fd, fcntl.F_NOTIFY, fcntl.DN_ACCESS | fcntl.DN_MULTISHOT)
    deadline = time.monotonic() + params["seconds"]
    while time.monotonic() < deadline:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            seen["flock"] += 1
        except OSError as error:
            setup["flock"] = repr(error)
        for name, command in (("posix_lock", fcntl.F_GETLK), ("ofd_lock", F_OFD_GETLK)):
            try:
                if lock_query(fd, command) != fcntl.F_UNLCK:
                    seen[name] += 1
            except OSError as error:
                setup[name] = repr(error)
        if not inotify["blocked"]:
            try:
                if _os.read(inotify["ret"], 65536):
                    seen["inotify"] += 1
            except BlockingIOError:
                pass
        time.sleep(0.02)
    return {"seen": seen, "setup": setup}
"""


def test_concurrent_runs_cannot_signal_through_locks_or_notifications(sandbox, run, run_b):
    params = {"file": SHARED_FILE, "dir": STDLIB}
    thread, box = in_background(lambda: run_b(RECEIVER, params={**params, "seconds": 2.5}, timeout_ms=6000))
    time.sleep(0.3)
    sender = run(SENDER, params={**params, "seconds": 2.0}, timeout_ms=6000)
    thread.join(10)
    assert "error" not in box, box.get("error")
    receiver = box["result"]
    assert sender.status == "success", sender
    assert sender.result["touched"] > 0, sender.result
    assert receiver.status == "success", receiver
    seen = receiver.result["seen"]
    assert not any(seen.values()), f"B observed A: {receiver.result}"
    # Not merely unseen: the calls themselves are refused, on both sides.
    for name in ("flock", "posix_lock", "ofd_lock"):
        assert sender.result[name]["blocked"], sender.result
        assert "PermissionError" in receiver.result["setup"].get(name, ""), receiver.result
    assert receiver.result["setup"]["inotify_init1"]["errname"] == "EPERM", receiver.result
    assert receiver.result["setup"]["dnotify"]["blocked"], receiver.result
    host_intact(sandbox, sender)
    host_intact(sandbox, receiver)
