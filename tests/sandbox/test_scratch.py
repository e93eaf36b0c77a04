"""The run's scratch space: a private tmpfs at SCRATCH_DIR (its TMPDIR and
`ctx.scratch_dir`), empty at start, gone at the end, never shared.

What a plugin may do there (write, list, read, make directories, rename,
link, symlink) works with every layer on -- which shows the Landlock rule on
its parent covers the tmpfs mounted below it after the ruleset was made --
and what it must not do still fails: leave files for the next run, see
another slot's run's files, write anywhere else (directly, through links,
renames or `..`), unmount, remount or cover it, make device nodes, fifos
or sockets, execute or map for execution what it wrote, outgrow its size or
its run's memory.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import os
import time

import pytest

from sandbox import DEFAULT_SCRATCH_MB, RunRequest
from sandbox.child.forkserver import SANDBOX_ROOT, SCRATCH_DIR
from tests.sandbox.helpers import STDLIB, TOKEN, host_intact, in_background, new_token, server_pids

pytestmark = pytest.mark.slow

MIB = 1 << 20


def test_write_list_and_read_files(sandbox, run):
    result = run(
        """
import tempfile
def attack(params, ctx):
    d = ctx.scratch_dir
    out = {"dir": d, "tmpdir": _os.environ.get("TMPDIR"), "gettempdir": tempfile.gettempdir(), "empty": _os.listdir(d)}
    with open(d + "/notes.txt", "w") as handle:
        handle.write("first line\\n")
    with open(d + "/notes.txt", "a") as handle:
        handle.write("second line\\n")
    _os.makedirs(d + "/sub/deeper")
    _os.rename(d + "/notes.txt", d + "/sub/deeper/notes.txt")
    _os.symlink("deeper/notes.txt", d + "/sub/link")
    _os.link(d + "/sub/deeper/notes.txt", d + "/sub/hard")
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".tmp") as handle:
        handle.write("x" * 100000)
        out["tempfile_in_scratch"] = _os.path.dirname(handle.name) == d
    with tempfile.TemporaryDirectory() as inner:
        open(inner + "/gone", "w").close()
    out["listing"] = sorted(_os.listdir(d + "/sub"))
    out["through_link"] = open(d + "/sub/link").read()
    out["through_hard"] = open(d + "/sub/hard").read()
    out["size"] = _os.path.getsize(handle.name)
    _os.truncate(handle.name, 10)
    out["truncated"] = _os.path.getsize(handle.name)
    _os.chmod(handle.name, 0o600)
    _os.utime(handle.name, (0, 0))
    out["mode_mtime"] = [oct(_os.stat(handle.name).st_mode & 0o777), _os.stat(handle.name).st_mtime]
    _os.unlink(handle.name)
    _os.remove(d + "/sub/hard")
    stat = _os.statvfs(d)
    out["capacity"] = stat.f_blocks * stat.f_frsize
    out["left"] = sorted(name for _, _, names in _os.walk(d) for name in names)
    return out
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report["dir"] == report["tmpdir"] == report["gettempdir"] == SCRATCH_DIR
    assert report["empty"] == []
    assert report["tempfile_in_scratch"] is True
    assert report["listing"] == ["deeper", "hard", "link"]
    assert report["through_link"] == report["through_hard"] == "first line\nsecond line\n"
    assert (report["size"], report["truncated"]) == (100000, 10)
    assert report["mode_mtime"] == ["0o600", 0.0]
    assert report["capacity"] == DEFAULT_SCRATCH_MB * MIB
    assert report["left"] == ["link", "notes.txt"]
    host_intact(sandbox, result)


def test_sqlite_works_there_with_locking_off_as_documented(sandbox, run):
    result = run(
        """
import fcntl, sqlite3
def attack(params, ctx):
    path = _os.path.join(ctx.scratch_dir, "data.db")
    db = sqlite3.connect("file:" + path + "?vfs=unix-none", uri=True)
    db.execute("create table t (x)")
    db.executemany("insert into t values (?)", [(i,) for i in range(100)])
    db.commit()
    total = db.execute("select sum(x) from t").fetchone()[0]
    db.close()
    return {"total": total, "size": _os.path.getsize(path),
            "flock": attempt(fcntl.flock, open(path, "rb"), fcntl.LOCK_EX),
            "default_vfs": attempt(lambda: sqlite3.connect(path).execute("select count(*) from t").fetchone())}
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report["total"] == 4950 and report["size"] > 0, report
    # File locks stay refused (seccomp): sqlite's default locking fails.
    assert report["flock"]["blocked"] and report["default_vfs"]["blocked"], report
    host_intact(sandbox, result)


WRITE_TOKEN = """
import threading, time
def attack(params, ctx):
    d = ctx.scratch_dir
    with open(d + "/left-behind", "w") as handle:
        handle.write(params["token"])
    _os.makedirs(d + "/nested/dir")
    open(d + "/nested/dir/file", "w").write(params["token"])
    holder = open(d + "/held-open", "w")
    def keep_writing():
        # Still writing after the answer: the child is killed when it answers.
        while True:
            holder.write(params["token"])
            holder.flush()
            attempt(lambda: open(d + "/late-" + str(time.monotonic()), "w").write(params["token"]))
            time.sleep(0.001)
    threading.Thread(target=keep_writing, daemon=True).start()
    time.sleep(0.05)
    return sorted(_os.listdir(d))
"""

LOOK_FOR_TOKEN = """
def attack(params, ctx):
    found = []
    for root, dirs, files in _os.walk("/scratch"):
        for name in files + dirs:
            path = _os.path.join(root, name)
            if path != ctx.scratch_dir:
                found.append(path)
            if _os.path.isfile(path) and params["token"] in open(path, errors="replace").read():
                found.append("token in " + path)
    return {"found": found, "scratch": ctx.scratch_dir, "listing": _os.listdir(ctx.scratch_dir)}
"""


def test_the_next_run_on_the_same_slot_finds_nothing(sandbox, run):
    token = new_token("scratch")
    first = run(WRITE_TOKEN, params={"token": token})
    assert first.status == "success", first
    assert "left-behind" in first.result and "nested" in first.result
    # Through every run cgroup of the slot, and back to the first.
    for _ in range(5):
        later = run(LOOK_FOR_TOKEN, params={"token": token})
        assert later.status == "success", later
        assert later.result == {"found": [], "scratch": SCRATCH_DIR, "listing": []}, later.result
        host_intact(sandbox, later)


def test_a_timed_out_runs_files_are_gone_too(sandbox, run):
    token = new_token("scratch-timeout")
    writer = run(
        """
def attack(params, ctx):
    open(ctx.scratch_dir + "/before-timeout", "w").write(params["token"])
    while True:
        pass
""",
        params={"token": token},
        timeout_ms=500,
    )
    assert writer.error_type == "TIMEOUT", writer
    later = run(LOOK_FOR_TOKEN, params={"token": token})
    assert later.status == "success", later
    assert later.result["found"] == [] and later.result["listing"] == [], later.result
    host_intact(sandbox, later)


def test_another_slots_run_is_invisible(sandbox, run, run_b):
    token = new_token("scratch-b")
    thread, box = in_background(lambda: run_b(
        """
import time
def attack(params, ctx):
    open(ctx.scratch_dir + "/b-was-here", "w").write(params["token"])
    time.sleep(1.5)
    return _os.listdir(ctx.scratch_dir)
""",
        params={"token": token},
    ))
    time.sleep(0.5)
    seen = run(LOOK_FOR_TOKEN, params={"token": token})
    thread.join(10)
    assert box["result"].status == "success" and box["result"].result == ["b-was-here"], box
    assert seen.status == "success", seen
    assert seen.result["found"] == [] and seen.result["listing"] == [], seen.result
    # Nor does the host see it: the mount is in the fork-server's namespace only.
    host_view = SANDBOX_ROOT + SCRATCH_DIR
    assert not os.path.exists(host_view) or os.listdir(host_view) == []
    host_intact(sandbox, seen)


FILL = """
import errno
def attack(params, ctx):
    d = ctx.scratch_dir
    written = 0
    try:
        if params["how"] == "one_file":
            with open(d + "/big", "wb") as handle:
                while True:
                    written += handle.write(b"x" * 65536)
        elif params["how"] == "many_files":
            while True:
                open(d + "/f%d" % written, "w").close()
                written += 1
        elif params["how"] == "sparse":
            with open(d + "/sparse", "wb") as handle:
                handle.seek(2 ** 40)
                handle.write(b"x")
    except OSError as error:
        if params["let_it_escape"]:
            raise
        return {"errno": errno.errorcode[error.errno], "written": written}
    return {"written": written}
"""


@pytest.mark.parametrize("how", ["one_file", "many_files", "sparse"])
def test_filling_it_is_an_oserror_for_the_plugin(sandbox, run, how):
    result = run(FILL, params={"how": how, "let_it_escape": False}, timeout_ms=10000)
    assert result.status == "success", result
    expected = {"one_file": "ENOSPC", "many_files": "ENOSPC", "sparse": "EFBIG"}[how]
    assert result.result["errno"] == expected, result.result
    if how == "one_file":
        assert 15 * MIB <= result.result["written"] <= DEFAULT_SCRATCH_MB * MIB, result.result
    after = run(LOOK_FOR_TOKEN, params={"token": TOKEN})
    assert after.result["listing"] == [], after.result
    host_intact(sandbox, result)


def test_filling_it_without_catching_says_the_scratch_space_is_full(sandbox, run):
    result = run(FILL, params={"how": "one_file", "let_it_escape": True}, timeout_ms=10000, scratch_mb=8)
    assert result.error_type == "PLUGIN_ERROR", result
    assert result.message.startswith("the run's scratch space (8 MiB) is full: OSError: [Errno 28]"), result.message
    host_intact(sandbox, result)


def test_what_it_stores_counts_against_the_runs_memory(sandbox, run):
    # It filled its 16 MiB: its peak counts them (an empty run peaks at a few MiB, more in a
    # run cgroup a bigger run used before, so the figure is absolute, not a difference).
    stored = run(FILL, params={"how": "one_file", "let_it_escape": False}, timeout_ms=10000)
    assert stored.result["written"] == 16 * MIB and stored.max_rss_bytes >= 16 * MIB, stored
    # A scratch space larger than the memory left: the memory limit comes first.
    over = run(FILL, params={"how": "one_file", "let_it_escape": True}, timeout_ms=10000, memory_mb=48, scratch_mb=128)
    assert over.error_type == "MEMORY_LIMIT_EXCEEDED", over
    assert "the files in its scratch space count too" in over.message
    # And the memory came back: the next runs -- one of them in the run cgroup
    # the killed run was in (the slot has four, used in turn) -- have all of theirs.
    for _ in range(4):
        again = run(FILL, params={"how": "one_file", "let_it_escape": False}, timeout_ms=10000, memory_mb=48, scratch_mb=16)
        assert again.status == "success" and again.result["errno"] == "ENOSPC", again
    host_intact(sandbox, again)


def test_a_scratch_space_over_the_clients_ceiling_is_refused(sandbox):
    request = RunRequest(execution_id="x", modules={"plugin.py": ""}, entrypoint="plugin.py", handler="attack",
                         params={}, timeout_ms=1000, memory_bytes=64 * MIB, scratch_mb=sandbox.a.max_scratch_mb + 1)
    with pytest.raises(ValueError, match="scratch space"):
        sandbox.a.run(request)


# -- escapes --------------------------------------------------------------------------------

ELSEWHERE = {
    # name: (path in the sandbox, host paths that must not appear)
    "tmp": (f"/tmp/{TOKEN}-scratch", [f"/tmp/{TOKEN}-scratch"]),
    "root": (f"/{TOKEN}-scratch", [f"/{TOKEN}-scratch"]),
    "dev_shm": (f"/dev/shm/{TOKEN}-scratch", [f"/dev/shm/{TOKEN}-scratch"]),
    "scratch_parent": (f"/scratch/{TOKEN}", []),
    "stdlib": (os.path.join(STDLIB, f"scratch_{TOKEN.replace('-', '_')}.py"), [os.path.join(STDLIB, f"scratch_{TOKEN.replace('-', '_')}.py")]),
    "dotdot_from_scratch": (f"{SCRATCH_DIR}/../../tmp/{TOKEN}-dotdot", [f"/tmp/{TOKEN}-dotdot"]),
}


@pytest.mark.parametrize("target", sorted(ELSEWHERE))
def test_writing_anywhere_else_is_still_refused(sandbox, run, target):
    path, host_paths = ELSEWHERE[target]
    result = run(
        """
def attack(params, ctx):
    return {"write": attempt(lambda: open(params["path"], "w").write("pwned")),
            "mkdir": attempt(_os.mkdir, params["path"] + "-dir"),
            "exists": _os.path.exists(params["path"])}
""",
        params={"path": path},
    )
    try:
        assert result.status == "success", result
        assert result.result["write"]["blocked"] and result.result["mkdir"]["blocked"], result.result
        assert result.result["exists"] is False
        for host_path in host_paths:
            assert not os.path.lexists(host_path) and not os.path.lexists(host_path + "-dir")
        host_intact(sandbox, result)
    finally:
        for host_path in host_paths:
            for leftover in (host_path, host_path + "-dir"):
                if os.path.isdir(leftover):
                    os.rmdir(leftover)
                elif os.path.lexists(leftover):
                    os.unlink(leftover)


def test_links_and_renames_do_not_lead_out(sandbox, run):
    host_target = f"/tmp/{TOKEN}-via-link"
    this_py = os.path.join(STDLIB, "this.py")
    before = os.stat(this_py)
    result = run(
        """
def attack(params, ctx):
    d = ctx.scratch_dir
    out = {}
    _os.symlink(params["host_target"], d + "/to-host")
    out["write_through_symlink"] = attempt(lambda: open(d + "/to-host", "w").write("pwned"))
    _os.symlink("/", d + "/to-root")
    out["write_through_dir_symlink"] = attempt(lambda: open(d + "/to-root/pwned", "w").write("pwned"))
    _os.symlink(params["this_py"], d + "/to-stdlib")
    out["append_through_symlink"] = attempt(lambda: open(d + "/to-stdlib", "a").write("pwned"))
    out["truncate_through_symlink"] = attempt(_os.truncate, d + "/to-stdlib", 0)
    out["hardlink_stdlib_in"] = attempt(_os.link, params["this_py"], d + "/this.py")
    out["rename_stdlib_in"] = attempt(_os.rename, params["this_py"], d + "/this.py")
    open(d + "/mine", "w").write("mine")
    out["rename_out"] = attempt(_os.rename, d + "/mine", "/tmp/mine")
    out["hardlink_out"] = attempt(_os.link, d + "/mine", "/tmp/mine-hard")
    out["symlink_out"] = attempt(_os.symlink, d + "/mine", "/tmp/mine-sym")
    out["rename_scratch_itself"] = attempt(_os.rename, d, "/scratch/elsewhere")
    out["rmdir_scratch_itself"] = attempt(_os.rmdir, d)
    fd = _os.open(d, _os.O_RDONLY)
    out["openat_dotdot"] = attempt(lambda: _os.open("../escape", _os.O_WRONLY | _os.O_CREAT, dir_fd=fd))
    _os.chdir(d)
    out["relative_dotdot"] = attempt(lambda: open("../../tmp/escape", "w"))
    out["chown_to_root"] = attempt(_os.chown, d + "/mine", 0, 0)
    out["setuid_bit"] = attempt(_os.chmod, d + "/mine", 0o4755)
    return out
""",
        params={"host_target": host_target, "this_py": this_py},
    )
    try:
        assert result.status == "success", result
        report = result.result
        # Setting the bit on its own file is allowed; nosuid and noexec make it mean nothing.
        report.pop("setuid_bit")
        assert all(outcome["blocked"] for outcome in report.values()), report
        assert "EXDEV" in report["hardlink_stdlib_in"]["error"] or "Errno 18" in report["hardlink_stdlib_in"]["error"]
        for leftover in (host_target, "/tmp/mine", "/tmp/mine-hard", "/tmp/mine-sym", "/tmp/escape", "/pwned"):
            assert not os.path.lexists(leftover), leftover
        after = os.stat(this_py)
        assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
        host_intact(sandbox, result)
    finally:
        if os.path.lexists(host_target):
            os.unlink(host_target)


def test_it_cannot_be_unmounted_remounted_or_covered(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    d = ctx.scratch_dir.encode()
    return {
        "umount": c_call("umount2", d, 2),
        "remount_exec": c_call("mount", None, d, None, _ctypes.c_ulong(32), None),  # MS_REMOUNT, without noexec
        "mount_over": c_call("mount", b"none", d, b"tmpfs", _ctypes.c_ulong(0), None),
        "mount_parent": c_call("mount", b"none", b"/scratch", b"tmpfs", _ctypes.c_ulong(0), None),
        "listing": _os.listdir(ctx.scratch_dir),
    }
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report.pop("listing") == [], report
    assert all(outcome["blocked"] and outcome["errname"] == "EPERM" for outcome in report.values()), report
    host_intact(sandbox, result)


def test_no_device_nodes_fifos_or_sockets(sandbox, run):
    result = run(
        """
import stat
def attack(params, ctx):
    d = ctx.scratch_dir
    out = {
        "char_device": attempt(_os.mknod, d + "/null", stat.S_IFCHR | 0o666, _os.makedev(1, 3)),
        "block_device": attempt(_os.mknod, d + "/disk", stat.S_IFBLK | 0o666, _os.makedev(8, 0)),
        "fifo": attempt(_os.mkfifo, d + "/fifo"),
        "regular_by_mknod": attempt(_os.mknod, d + "/plain", stat.S_IFREG | 0o600),
        "unix_socket": attempt(lambda: _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM).bind(d + "/sock")),
    }
    left, right = _socket.socketpair()
    out["bind_socketpair_end"] = attempt(left.bind, d + "/pair")
    out["left"] = _os.listdir(d)
    return out
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report.pop("left") == [], report
    assert all(outcome["blocked"] for outcome in report.values()), report
    host_intact(sandbox, result)


def test_nothing_written_there_can_run(sandbox, run):
    result = run(
        """
import mmap, shutil
def attack(params, ctx):
    d = ctx.scratch_dir
    library = next(_os.path.join(params["dynload"], name) for name in sorted(_os.listdir(params["dynload"]))
                   if name.endswith(".so"))
    shutil.copyfile(library, d + "/copy.so")
    _os.chmod(d + "/copy.so", 0o755)
    open(d + "/script.sh", "w").write("#!/bin/sh\\necho pwned\\n")
    _os.chmod(d + "/script.sh", 0o755)
    handle = open(d + "/copy.so", "rb")
    out = {
        "dlopen": attempt(_ctypes.CDLL, d + "/copy.so"),
        "mmap_exec": attempt(mmap.mmap, handle.fileno(), 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC),
        "execve": attempt(_os.execv, d + "/script.sh", ["script.sh"]),
        "access_x": {"blocked": not _os.access(d + "/script.sh", _os.X_OK)},
    }
    mapping = libc().mmap
    mapping.restype = _ctypes.c_void_p
    mapping.argtypes = [_ctypes.c_void_p, _ctypes.c_size_t, _ctypes.c_int, _ctypes.c_int, _ctypes.c_int, _ctypes.c_long]
    address = mapping(None, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE, handle.fileno(), 0)
    out["mprotect_exec"] = c_call("mprotect", _ctypes.c_void_p(address), _ctypes.c_size_t(4096), mmap.PROT_READ | mmap.PROT_EXEC)
    return out
""",
        params={"dynload": os.path.join(STDLIB, "lib-dynload")},
    )
    assert result.status == "success", result
    assert all(outcome["blocked"] for outcome in result.result.values()), result.result
    host_intact(sandbox, result)


def test_what_it_sees_of_its_mounts_names_no_host_path(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/mounts", "/etc/mtab"):
        out[path] = attempt(lambda p=path: open(p).read())
    out["root"] = sorted(_os.listdir("/"))
    out["scratch"] = sorted(_os.listdir("/scratch"))
    return out
"""
    )
    assert result.status == "success", result
    report = result.result
    for path in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/mounts", "/etc/mtab"):
        assert report[path]["blocked"], report[path]
    assert "scratch" in report["root"] and report["scratch"] == ["run"], report
    assert SANDBOX_ROOT not in str(report) and "/work" not in str(report)
    host_intact(sandbox, result)


def scratch_mounts(pid):
    """The scratch mounts in the mount table of process `pid`: (per-mount
    options, filesystem options) each."""
    with open(f"/proc/{pid}/mountinfo") as table:
        fields = [line.split() for line in table]
    return [(f[5], f[f.index("-") + 3]) for f in fields if f[4] == SCRATCH_DIR]


def test_the_mount_is_the_fork_servers_alone_and_never_piles_up(sandbox, run):
    fork_server = server_pids(sandbox.a)["inner"][0]
    thread, box = in_background(lambda: run(
        "import time\ndef attack(params, ctx):\n    time.sleep(1)\n    return 1\n", scratch_mb=32))
    deadline = time.monotonic() + 5
    while not scratch_mounts(fork_server) and time.monotonic() < deadline:
        time.sleep(0.01)
    during = scratch_mounts(fork_server)
    thread.join(10)
    assert box["result"].status == "success", box
    assert len(during) == 1, during
    options, fs_options = during[0]
    assert {"nosuid", "nodev", "noexec"} <= set(options.split(",")), options
    assert {"size=32768k", f"uid={sandbox.a.slot.uid}", "mode=700"} <= set(fs_options.split(",")), fs_options
    for _ in range(6):
        run(WRITE_TOKEN, params={"token": TOKEN})
    assert len(scratch_mounts(fork_server)) <= 1, scratch_mounts(fork_server)
    assert scratch_mounts(os.getpid()) == [], "the host's mount table shows a run's scratch space"
    host_intact(sandbox, box["result"])
