"""Hostile plugins against the host's files: writes (anywhere, sparse, through
`..`), reads (the database, settings, secrets, /etc, /proc, the canary), what
the root and the environment show, links, device nodes and fifos, changing
permissions and times. Nothing reaches or changes the host.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import os
import shutil

import pytest

from sandbox.child.forkserver import SCRATCH_DIR
from tests.factories import ROOT
from tests.sandbox.helpers import CANARY, STDLIB, TOKEN, host_intact, result_text

pytestmark = pytest.mark.slow

# -- the filesystem: writes -------------------------------------------------------------

WRITE_PLUGIN = """
def attack(params, ctx):
    path, mode = params["path"], params["mode"]
    def do():
        if mode == "sparse":
            with open(path, "wb") as handle:
                handle.seek(2 ** 40)
                handle.write(b"x")
        elif mode == "open_append":
            with open(path, "ab") as handle:  # opening for write is the attack; writes nothing
                handle.write(b"")
        elif mode == "mkdir":
            _os.makedirs(path)
        else:
            with open(path, "w") as handle:
                handle.write("pwned")
        return _os.path.exists(path)
    return attempt(do)
"""

WRITE_TARGETS = {
    # name: (path inside the sandbox, mode, host paths that must not appear)
    "cwd": (f"pwned-cwd-{TOKEN}", "create", [f"/pwned-cwd-{TOKEN}", str(ROOT / f"pwned-cwd-{TOKEN}"), os.path.join(os.getcwd(), f"pwned-cwd-{TOKEN}")]),
    "tmp": (f"/tmp/{TOKEN}", "create", [f"/tmp/{TOKEN}"]),
    "dev_shm": (f"/dev/shm/{TOKEN}", "create", [f"/dev/shm/{TOKEN}"]),
    "project_tree": ("/work/main/pwned", "create", ["/work/main/pwned"]),
    "etc": (f"/etc/{TOKEN}", "create", [f"/etc/{TOKEN}"]),
    "sparse_1tib": (f"/tmp/{TOKEN}-sparse", "sparse", [f"/tmp/{TOKEN}-sparse"]),
    "dotdot": (f"../../../../../../tmp/{TOKEN}-dotdot", "create", [f"/tmp/{TOKEN}-dotdot"]),
    "stdlib_new_module": (os.path.join(STDLIB, f"pwned_{TOKEN.replace('-', '_')}.py"), "create", [os.path.join(STDLIB, f"pwned_{TOKEN.replace('-', '_')}.py")]),
    "stdlib_mkdir": (os.path.join(STDLIB, f"pwned-dir-{TOKEN}"), "mkdir", [os.path.join(STDLIB, f"pwned-dir-{TOKEN}")]),
    "root_dir": (f"/{TOKEN}", "create", [f"/{TOKEN}"]),
}


@pytest.mark.parametrize("target", sorted(WRITE_TARGETS))
def test_write_escape(sandbox, run, target):
    path, mode, host_paths = WRITE_TARGETS[target]
    for host_path in host_paths:
        assert not os.path.lexists(host_path), f"{host_path} exists before the test"
    try:
        result = run(WRITE_PLUGIN, params={"path": path, "mode": mode})
        assert result.status == "success", result
        assert result.result["blocked"] is True, result.result
        for host_path in host_paths:
            assert not os.path.lexists(host_path), f"the plugin created {host_path} on the host"
        host_intact(sandbox, result)
    finally:
        for host_path in host_paths:
            if os.path.isdir(host_path) and not os.path.islink(host_path):
                shutil.rmtree(host_path, ignore_errors=True)
            elif os.path.lexists(host_path):
                os.unlink(host_path)


def test_open_stdlib_file_for_write(sandbox, run):
    target = os.path.join(STDLIB, "this.py")
    before = os.stat(target)
    result = run(WRITE_PLUGIN, params={"path": target, "mode": "open_append"})
    after = os.stat(target)
    assert result.status == "success", result
    assert result.result["blocked"] is True, result.result
    assert (after.st_mtime_ns, after.st_size, after.st_mode) == (before.st_mtime_ns, before.st_size, before.st_mode)
    host_intact(sandbox, result)


# -- the filesystem: reads ----------------------------------------------------------------

READ_PLUGIN = """
def attack(params, ctx):
    path = params["path"].format(ppid=_os.getppid(), pid=_os.getpid())
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 16)
    except BaseException as error:
        return {"blocked": True, "path": path, "error": f"{type(error).__name__}: {error}"[:300]}
    report = {"blocked": False, "path": path, "nbytes": len(data)}
    if params.get("return_data"):
        report["data"] = data.decode("utf-8", "replace")
    return report
"""

READ_TARGETS = {
    # name: (path, whether the plugin may return what it read)
    "sqlite_db": (str(ROOT / "var" / "db.sqlite3"), False),
    "settings_py": (str(ROOT / "executor_project" / "settings.py"), False),
    "secret_key_file": (str(ROOT / "var" / "secret_key"), False),
    "etc_passwd": ("/etc/passwd", True),
    "etc_shadow": ("/etc/shadow", False),
    "proc_1_environ": ("/proc/1/environ", True),
    "proc_1_cmdline": ("/proc/1/cmdline", True),
    "proc_self_environ": ("/proc/self/environ", True),
    "proc_parent_environ": ("/proc/{ppid}/environ", True),
    "proc_parent_cmdline": ("/proc/{ppid}/cmdline", True),
    "proc_self_status": ("/proc/self/status", True),
    "root_bashrc": ("/root/.bashrc", True),
    "host_canary_file": (None, True),  # the fixture's file holding the canary
    "cgroup_tasks": ("/sys/fs/cgroup/memory/tasks", True),
    "dotdot_passwd": ("../../../../../../etc/passwd", True),
    "dev_mem": ("/dev/mem", False),
}


@pytest.mark.parametrize("target", sorted(READ_TARGETS))
def test_read_host_file(sandbox, run, target):
    path, return_data = READ_TARGETS[target]
    if path is None:
        path = str(sandbox.canary_file)
    result = run(READ_PLUGIN, params={"path": path, "return_data": return_data})
    assert result.status == "success", result
    assert result.result["blocked"] is True, {k: v for k, v in result.result.items() if k != "data"}
    text = result_text(result)
    for marker in (CANARY, "SQLite format 3", "root:x:0:0", "SECRET_KEY"):
        assert marker not in text
    host_intact(sandbox, result)


def test_listing_root_shows_a_minimal_tree(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    report = {"root": sorted(_os.listdir("/"))}
    for name in ("/home", "/etc", "/work", "/proc", "/sys", "/var", "/tmp", "/run", "/boot", "/opt", "/srv", "/mnt", "/bin", "/sbin"):
        report[name] = _os.path.exists(name)
    report["dotdot"] = sorted(_os.listdir("/.."))
    report["dev"] = sorted(_os.listdir("/dev"))
    return report
"""
    )
    assert result.status == "success", result
    report = result.result
    forbidden = {"home", "etc", "work", "proc", "sys", "var", "tmp", "run", "boot", "opt", "srv", "mnt", "bin", "sbin"}
    assert not forbidden & set(report["root"]), report["root"]
    assert len(report["root"]) <= 6, report["root"]
    assert report["dotdot"] == report["root"]
    assert not any(report[f"/{name}"] for name in forbidden), report
    assert set(report["dev"]) <= {"null", "zero", "urandom", "random"}, report["dev"]
    host_intact(sandbox, result)


def test_root_home_is_not_visible(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    report = {"listing": attempt(lambda: sorted(_os.listdir("/root")))}
    for name in (".bashrc", ".profile", ".gitconfig", ".config", ".cargo"):
        report[name] = _os.path.exists("/root/" + name)
    return report
"""
    )
    assert result.status == "success", result
    report = result.result
    # Only the path down to the interpreter's standard library may show.
    if not report["listing"]["blocked"]:
        assert set(eval(report["listing"]["value"])) <= {".pyenv", ".local"}, report["listing"]
    assert not any(report[name] for name in (".bashrc", ".profile", ".gitconfig", ".config", ".cargo")), report
    host_intact(sandbox, result)


def test_environment_is_empty(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    return {"environ": dict(_os.environ), "canary": _os.getenv("HOST_CANARY"),
            "libc_getenv": bool(libc().getenv(b"HOST_CANARY"))}
"""
    )
    assert result.status == "success", result
    # Nothing of the host's: TMPDIR, the run's scratch directory (tests/sandbox/test_scratch.py),
    # and the fixed caps that keep numerical libraries to one thread.
    environ = {"TMPDIR": SCRATCH_DIR, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert result.result == {"environ": environ, "canary": None, "libc_getenv": False}
    host_intact(sandbox, result)


# -- links, device nodes, permissions -------------------------------------------------------


def test_symlink_and_hardlink(sandbox, run):
    targets = [os.path.join(STDLIB, f"hostile-link-{TOKEN}"), f"/tmp/{TOKEN}-link", f"/{TOKEN}-link"]
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["sym:" + path] = attempt(_os.symlink, "/etc/passwd", path)
        out["hard:" + path] = attempt(_os.link, _os.__file__, path)
    out["relative"] = attempt(_os.symlink, "/", "escape-link")
    return out
""",
        params={"targets": targets},
    )
    try:
        assert result.status == "success", result
        assert all(report["blocked"] for report in result.result.values()), result.result
        for path in targets:
            assert not os.path.lexists(path), f"{path} appeared on the host"
        host_intact(sandbox, result)
    finally:
        for path in targets:
            if os.path.lexists(path):
                os.unlink(path)


def test_mknod_and_fifo(sandbox, run):
    targets = [os.path.join(STDLIB, f"hostile-node-{TOKEN}"), f"/tmp/{TOKEN}-node", f"/{TOKEN}-fifo"]
    result = run(
        """
import stat
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["chr:" + path] = attempt(_os.mknod, path, stat.S_IFCHR | 0o666, _os.makedev(1, 3))
        out["fifo:" + path] = attempt(_os.mkfifo, path)
    return out
""",
        params={"targets": targets},
    )
    try:
        assert result.status == "success", result
        assert all(report["blocked"] for report in result.result.values()), result.result
        for path in targets:
            assert not os.path.lexists(path)
        host_intact(sandbox, result)
    finally:
        for path in targets:
            if os.path.lexists(path):
                os.unlink(path)


def test_chmod_and_chown_of_visible_files(sandbox, run):
    targets = [os.path.join(STDLIB, "this.py"), STDLIB]
    before = {path: os.stat(path) for path in targets}
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in params["targets"]:
        out["chmod:" + path] = attempt(_os.chmod, path, 0o777)
        out["chown:" + path] = attempt(_os.chown, path, _os.getuid(), _os.getgid())
        out["utime:" + path] = attempt(_os.utime, path, (0, 0))
    return out
""",
        params={"targets": targets},
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    for path in targets:
        after = os.stat(path)
        assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (before[path].st_mode, before[path].st_uid, before[path].st_mtime_ns)
    host_intact(sandbox, result)
