"""The isolation layers, as plain Linux system calls.

Runs in the fork-server and in the child it forks; imports nothing but the
standard library (and libseccomp through pyseccomp in the fork-server only),
so no Django, setting or credential can reach the child through this module.

Two kinds of work live here:
- `prepare_server`: costly layers done once per fork-server — namespaces, the
  read-only filesystem view, the seccomp program, the Landlock ruleset, the
  cgroup of its slot.
- `enter_child`: the cheap per-run layers applied in the forked child before
  it reads any plugin code.
"""

import ctypes
import errno
import os
import resource
import signal
import socket
import sys
from dataclasses import dataclass, field

LIBC = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
CLONE_THREAD = 0x00010000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SYS_PIVOT_ROOT = 155
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
SYS_CLOSE_RANGE = 436

LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_ACCESS_FS_EXECUTE = 1 << 0
LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
LANDLOCK_ACCESS_FS_READ_DIR = 1 << 3
LANDLOCK_ACCESS_FS_REMOVE_DIR = 1 << 4
LANDLOCK_ACCESS_FS_REMOVE_FILE = 1 << 5
LANDLOCK_ACCESS_FS_MAKE_DIR = 1 << 7
LANDLOCK_ACCESS_FS_MAKE_REG = 1 << 8
LANDLOCK_ACCESS_FS_MAKE_SYM = 1 << 12
LANDLOCK_ACCESS_FS_REFER = 1 << 13
LANDLOCK_ACCESS_FS_TRUNCATE = 1 << 14
# What a run may do beneath its scratch directory: files, directories and
# symbolic links, moved and linked within it. Not granted there either:
# executing, device nodes, fifos and sockets.
LANDLOCK_SCRATCH_RIGHTS = (
    LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR
    | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR
    | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER
    | LANDLOCK_ACCESS_FS_TRUNCATE
)
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
LANDLOCK_SCOPE_SIGNAL = 1 << 1
# The first ABI that scopes signals and abstract Unix sockets to the domain:
# below it a run can signal another run's child (or a spare) of the same uid.
LANDLOCK_SCOPING_ABI = 6
# Every filesystem right the kernel knows, by ABI: handled means denied
# unless a rule grants it.
LANDLOCK_FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
LANDLOCK_FS_ALL_LATEST = (1 << 16) - 1
LANDLOCK_NET_ALL = (1 << 0) | (1 << 1)

# The layers, in the order they are reported. Operators name them in
# SANDBOX_REQUIRED_LAYERS.
ALL_LAYERS = (
    "fresh_process",
    "empty_environment",
    "closed_fds",
    "rlimits",
    "no_new_privs",
    "unprivileged_uid",
    "pid_namespace",
    "net_namespace",
    "mount_namespace",
    "ipc_namespace",
    "uts_namespace",
    "readonly_root",
    "landlock",
    "landlock_scoping",
    "seccomp",
    "cgroup_memory",
    "cgroup_pids",
    "cgroup_cpu",
)


class ConfinementError(Exception):
    """A layer that was asked for could not be put in place."""


def _check(result, what):
    if result == -1 or (result is not None and result < 0):
        err = ctypes.get_errno()
        raise ConfinementError(f"{what}: {os.strerror(err)}")
    return result


def syscall(number, *args):
    return LIBC.syscall(ctypes.c_long(number), *args)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(
        LIBC.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        ),
        f"prctl({option})",
    )


def unshare(flags):
    _check(LIBC.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def mount(source, target, fstype, flags, data=None):
    _check(
        LIBC.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


class LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class LandlockPathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi():
    version = syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return version if version > 0 else 0


def landlock_scoping_state(abi, landlock_active):
    """(active, reason) of the scoping layer: it comes with the ruleset, from
    ABI 6 on; an older kernel still gets the filesystem wall, reported apart."""
    if not landlock_active:
        return False, "no Landlock ruleset"
    if abi < LANDLOCK_SCOPING_ABI:
        return False, f"Landlock ABI {abi} has no signal or abstract-socket scoping (needs ABI {LANDLOCK_SCOPING_ABI}, Linux 6.12+)"
    return True, ""


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


# --- cgroups -----------------------------------------------------------------

CGROUP_V1_ROOT = "/sys/fs/cgroup"
CGROUP_CONTROLLERS = ("memory", "pids", "cpu")
# cgroup v1 keeps CPU accounting in its own controller; v2 has it in "cpu".
CGROUP_V1_ACCOUNTING = "cpuacct"


def _cgroup_v2_root():
    """The cgroup2 mount whose controllers we may use, or None."""
    for candidate in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        controllers = os.path.join(candidate, "cgroup.controllers")
        if os.path.exists(controllers):
            with open(controllers) as handle:
                available = set(handle.read().split())
            if available & set(CGROUP_CONTROLLERS):
                return candidate, available
    return None, set()


@dataclass
class RunCgroup:
    """One cgroup (per controller) that a run's child is moved into.

    Held as directory descriptors, opened before the fork-server pivots away
    from the host's /sys, and written by the fork-server (root) only.
    """

    version: int
    dir_fds: dict = field(default_factory=dict)
    file_fds: dict = field(default_factory=dict)
    limits: tuple = ()
    oom_kills_seen: int = 0
    cpu_baseline_us: int = 0
    peak_fd: int | None = None

    @property
    def controllers(self):
        return set(self.dir_fds)

    def add(self, controller, directory):
        self.dir_fds[controller] = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _fd(self, controller, name, flags):
        """A descriptor kept open for the slot's life: cgroup files are read
        and written on every run, and opening them each time costs."""
        key = (controller, name, flags)
        if key not in self.file_fds:
            self.file_fds[key] = os.open(name, flags | os.O_CLOEXEC, dir_fd=self.dir_fds[controller])
        return self.file_fds[key]

    def write(self, controller, name, value):
        os.pwrite(self._fd(controller, name, os.O_WRONLY), str(value).encode(), 0)

    def read(self, controller, name):
        try:
            return os.pread(self._fd(controller, name, os.O_RDONLY), 65536, 0).decode()
        except OSError:
            return ""

    def has(self, controller, name):
        try:
            os.stat(name, dir_fd=self.dir_fds[controller])
        except OSError:
            return False
        return True

    def adopt(self, pid):
        """Move `pid` in (0: the calling process); in cgroup v2 one write
        covers every controller."""
        for controller in ([next(iter(self.dir_fds))] if self.version == 2 else self.dir_fds):
            self.write(controller, "cgroup.procs", pid)

    def set_limits(self, memory_bytes, pids, cpu_quota_fraction=1.0):
        if self.limits == (memory_bytes, pids, cpu_quota_fraction):
            return
        period = 100000
        quota = int(period * cpu_quota_fraction)
        if "memory" in self.dir_fds:
            if self.version == 1:
                self.write("memory", "memory.limit_in_bytes", memory_bytes)
            else:
                self.write("memory", "memory.max", memory_bytes)
                if self.has("memory", "memory.swap.max"):
                    self.write("memory", "memory.swap.max", 0)
        if "pids" in self.dir_fds:
            self.write("pids", "pids.max", pids)
        if "cpu" in self.dir_fds:
            if self.version == 1:
                self.write("cpu", "cpu.cfs_period_us", period)
                self.write("cpu", "cpu.cfs_quota_us", quota)
            else:
                self.write("cpu", "cpu.max", f"{quota} {period}")
        self.limits = (memory_bytes, pids, cpu_quota_fraction)

    def start_accounting(self):
        """Zero the run's CPU and peak-memory counters before a run is moved in."""
        if self.version == 1:
            for controller, name in (("memory", "memory.max_usage_in_bytes"), (CGROUP_V1_ACCOUNTING, "cpuacct.usage")):
                if controller in self.dir_fds:
                    self.write(controller, name, 0)
            return
        self.cpu_baseline_us = self._v2_cpu_usage_us()
        if "memory" in self.dir_fds:
            # Since Linux 6.12 a write resets memory.peak as seen through that descriptor.
            if self.peak_fd is None:
                try:
                    self.peak_fd = os.open("memory.peak", os.O_RDWR | os.O_CLOEXEC, dir_fd=self.dir_fds["memory"])
                except OSError:
                    return
            try:
                os.write(self.peak_fd, b"reset")
            except OSError:
                pass

    def _v2_cpu_usage_us(self):
        if "cpu" not in self.dir_fds:
            return 0
        for line in self.read("cpu", "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value)
        return 0

    def usage(self):
        """(cpu ms, peak memory bytes) of the current run, as the kernel counted
        them, or None for what this host does not account."""
        if self.version == 1:
            cpu = self.read(CGROUP_V1_ACCOUNTING, "cpuacct.usage") if CGROUP_V1_ACCOUNTING in self.dir_fds else ""
            peak = self.read("memory", "memory.max_usage_in_bytes") if "memory" in self.dir_fds else ""
            return (int(cpu) / 1e6 if cpu.strip() else None), (int(peak) if peak.strip() else None)
        cpu = (self._v2_cpu_usage_us() - self.cpu_baseline_us) / 1000 if "cpu" in self.dir_fds else None
        peak = None
        if self.peak_fd is not None:
            peak = int(os.pread(self.peak_fd, 64, 0) or b"0")
        return cpu, peak

    def was_oom_killed(self):
        """Whether the memory controller killed something since the last look.

        Only asked about a child that died of SIGKILL, the OOM killer's signal,
        so the common path reads nothing.
        """
        count = self.oom_kills()
        killed = count > self.oom_kills_seen
        self.oom_kills_seen = count
        return killed

    def oom_kills(self):
        if "memory" not in self.dir_fds:
            return 0
        text = self.read("memory", "memory.oom_control" if self.version == 1 else "memory.events")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def kill_all(self):
        """Kill whatever is left inside (nothing, unless a layer failed).

        Every controller holds the same processes, so one listing is enough.
        """
        controller = next(iter(self.dir_fds))
        if self.version == 2 and self.has(controller, "cgroup.kill"):
            try:
                self.write(controller, "cgroup.kill", 1)
            except OSError:
                pass
            return
        for line in self.read(controller, "cgroup.procs").split():
            try:
                os.kill(int(line), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def _enable_v2_controllers(root, path, wanted):
    """cgroup v2 delegates a controller one level at a time, from the root down."""
    directory = root
    for part in [""] + path.split("/")[:-1]:
        directory = os.path.join(directory, part) if part else directory
        try:
            with open(os.path.join(directory, "cgroup.subtree_control"), "w") as handle:
                handle.write(wanted)
        except OSError:
            pass


def create_run_cgroup(path):
    """Make (or reuse) `plugin-sandbox/<path>` under every controller we can
    write. A reused cgroup keeps its count of OOM kills from an earlier
    fork-server of the slot: only kills from now on are this one's."""
    cgroup = _make_run_cgroup(path)
    cgroup.oom_kills_seen = cgroup.oom_kills()
    return cgroup


def _make_run_cgroup(path):
    root_v2, available_v2 = _cgroup_v2_root()
    relative = f"plugin-sandbox/{path}"
    if root_v2 and available_v2 & set(CGROUP_CONTROLLERS):
        run_dir = os.path.join(root_v2, relative)
        os.makedirs(run_dir, exist_ok=True)
        _enable_v2_controllers(root_v2, relative, " ".join(f"+{c}" for c in CGROUP_CONTROLLERS if c in available_v2))
        cgroup = RunCgroup(version=2)
        for controller in CGROUP_CONTROLLERS:
            if controller in available_v2:
                cgroup.add(controller, run_dir)
        return cgroup
    cgroup = RunCgroup(version=1)
    for controller in CGROUP_CONTROLLERS + (CGROUP_V1_ACCOUNTING,):
        mount_point = os.path.join(CGROUP_V1_ROOT, controller)
        if not os.path.exists(os.path.join(mount_point, "cgroup.procs")):
            continue
        run_dir = os.path.join(mount_point, relative)
        try:
            os.makedirs(run_dir, exist_ok=True)
            cgroup.add(controller, run_dir)
        except OSError:
            continue
    return cgroup


# --- the filesystem view -----------------------------------------------------


def _mapped_library_dirs():
    """Directories of the shared libraries this interpreter has loaded: what a
    later `import` of a C extension may need the dynamic loader to find."""
    dirs = set()
    with open("/proc/self/maps") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[5] and parts[5].startswith("/"):
                dirs.add(os.path.dirname(os.path.realpath(parts[5])))
    return dirs


# Third-party packages are not the child's to read, wherever they sit: a
# Python built from source (pyenv, /usr/local) keeps site-packages inside its
# standard library, Debian's keeps dist-packages beside it.
SITE_DIR_NAMES = ("site-packages", "dist-packages")


def _is_third_party(path):
    return any(part in SITE_DIR_NAMES for part in path.split(os.sep))


def readonly_view_sources():
    """What the child may read: the standard library and the system libraries."""
    stdlib = os.path.dirname(os.__file__)
    sources = {stdlib, os.path.join(stdlib, "lib-dynload")} | _mapped_library_dirs()
    for loader_dir in ("/lib64",):
        if os.path.isdir(loader_dir):
            sources.add(loader_dir)
    return sorted(s for s in sources if os.path.isdir(s) and not _is_third_party(s))


def top_level_links(path):
    """The top-level symbolic links (/lib -> usr/lib on a merged-/usr host)
    that resolving `path` goes through: the view needs them for a path
    compiled into a binary (the dynamic loader's) to resolve there too."""
    links = set()
    for _ in range(40):  # the kernel's own bound on links followed
        top = "/" + path.lstrip("/").split("/")[0]
        if os.path.islink(top):
            links.add(top)
            path = os.path.join("/", os.readlink(top), path.lstrip("/")[len(top):].lstrip("/"))
        elif os.path.islink(path):
            path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
        else:
            break
    return sorted(links)


def third_party_dirs(sources):
    """The site directories inside `sources`, to be masked: those directly in
    a source, and the interpreter's own (site and user site) that fall
    anywhere beneath one. The fork-server runs with `-I -S`, so its sys.path
    names none of them."""
    import site  # with -S, importing it changes nothing

    found = set()
    for source in sources:
        with os.scandir(source) as entries:
            found.update(e.path for e in entries if e.name in SITE_DIR_NAMES and e.is_dir(follow_symlinks=False))
    for candidate in map(os.path.realpath, site.getsitepackages() + [site.getusersitepackages()]):
        if os.path.isdir(candidate) and any(candidate.startswith(source + os.sep) for source in sources):
            found.add(candidate)
    return sorted(found)


def build_readonly_root(new_root, sources, hidden, packages=(), mount_points=(), files=(), links=()):
    """Mount a tmpfs at `new_root` holding read-only binds of `sources`, with
    `hidden` paths masked by empty read-only tmpfs, and each package directory
    of `packages` (host path, path in the view, whether code may be mapped
    executable from it) bound read-only where it belongs; `files` are single
    files (host path, path in the view) bound read-only, without the rest of
    their directory; `links` are top-level symbolic links of the host made
    again in the view (see top_level_links); `mount_points` are empty
    directories made in it for later mounts. Then pivot into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(new_root, exist_ok=True)
    mount("sandbox-root", new_root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in mount_points:
        os.makedirs(new_root + path)
    ro_flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    # nested sources sorted so parents are mounted before children
    for source in sources:
        target = new_root + source
        os.makedirs(target, exist_ok=True)
        mount(source, target, None, MS_BIND)
        mount(None, target, None, ro_flags)
    os.makedirs(new_root + "/dev", exist_ok=True)
    for device in ("null", "zero", "urandom", "random"):
        target = f"{new_root}/dev/{device}"
        open(target, "w").close()
        mount(f"/dev/{device}", target, None, MS_BIND)
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    for path in hidden:
        target = new_root + path
        if os.path.isdir(target):
            mount("masked", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
    for source, view_path, executable in packages:
        target = new_root + view_path
        os.makedirs(target, exist_ok=True)
        mount(source, target, None, MS_BIND)
        mount(None, target, None, ro_flags | (0 if executable else MS_NOEXEC))
    for link in links:
        if not os.path.lexists(new_root + link):
            os.symlink(os.readlink(link), new_root + link)
    for source, view_path in files:
        target = new_root + view_path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").close()
        mount(source, target, None, MS_BIND)
        mount(None, target, None, ro_flags)
    old_root = new_root + "/.old-root"
    os.makedirs(old_root, exist_ok=True)
    _check(syscall(SYS_PIVOT_ROOT, new_root.encode(), old_root.encode()), "pivot_root")
    os.chdir("/")
    _check(LIBC.umount2(b"/.old-root", ctypes.c_int(MNT_DETACH)), "umount old root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


# Files and directories a scratch space may hold, per MiB of its size: inodes
# cost kernel memory, which the size does not count.
SCRATCH_INODES_PER_MB = 256


def mount_scratch(path, size_bytes, uid, gid):
    """A fresh, empty tmpfs of `size_bytes` at `path`, owned by the run's uid.

    Its pages are charged to the memory cgroup of whoever writes them: the
    run's child, so what it stores counts against the run's memory."""
    size_mb = max(1, size_bytes >> 20)
    options = f"size={size_bytes},nr_inodes={size_mb * SCRATCH_INODES_PER_MB},mode=0700,uid={uid},gid={gid}"
    mount("scratch", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options)


def unmount_scratch(path):
    """Take the tmpfs out of the view at once; the kernel frees it when the
    last file open in it (the dying child's) is closed."""
    _check(LIBC.umount2(path.encode(), ctypes.c_int(MNT_DETACH)), f"unmount {path}")


# --- seccomp -----------------------------------------------------------------

# An allowlist: what CPython, the runtime and the standard library need, found
# by tracing the example plugins, a run through most of the standard library
# (threads, asyncio, sqlite, compression, signals, select) and the hostile
# suite. Every other call -- and any the kernel adds later -- fails with EPERM,
# so a plugin sees an OSError, not a dead process. Left out on purpose:
# everything that creates a process or a socket, runs a program, inspects
# another process, changes the namespaces, makes device nodes or fifos or
# owns files to another uid; locks and change
# notifications on the files every run shares (two concurrent runs could
# signal each other through them); and the larger kernel surfaces.
SECCOMP_ALLOWED = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
    # threads, waiting, leaving
    "futex", "set_robust_list", "rseq", "set_tid_address", "gettid", "sched_yield", "sched_getaffinity",
    "exit", "exit_group", "restart_syscall",
    # signals (Landlock scopes them to the child itself)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigsuspend",
    "sigaltstack", "kill", "tgkill", "tkill", "alarm", "setitimer", "getitimer", "pause",
    # time
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "times",
    # reading the read-only view; reading and writing descriptors it holds
    # (Landlock and the read-only mounts confine the changes below to the
    # run's scratch directory)
    "read", "pread64", "readv", "preadv", "preadv2", "write", "pwrite64", "writev", "pwritev", "pwritev2",
    "open", "openat", "close", "close_range", "lseek", "stat", "fstat", "lstat", "newfstatat", "statx",
    "getdents64", "readlink", "readlinkat", "access", "faccessat", "faccessat2", "getcwd", "chdir", "fchdir",
    "statfs", "fstatfs", "dup", "dup2", "dup3", "pipe", "pipe2",
    # files in the scratch directory: no device nodes, fifos or sockets
    "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
    "link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate", "fsync", "fdatasync",
    "chmod", "fchmod", "fchmodat", "utime", "utimes", "utimensat", "futimesat",
    "poll", "ppoll", "select", "pselect6",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    # the channel (and socketpairs, below)
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown",
    "getsockname", "getpeername", "getsockopt", "setsockopt",
    # about itself
    "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
    "getpgrp", "getpgid", "getsid", "getrusage", "capget", "uname", "getrandom",
)
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
TCGETS, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX = 0x5401, 0x541B, 0x5421, 0x5450, 0x5451
PR_GET_DUMPABLE, PR_GET_NAME, PR_CAPBSET_READ = 3, 16, 23
# Calls allowed with one argument among a few values: (argument, values, how
# sandbox_check names them). Exact values only: the kernel reads fcntl's and
# ioctl's command as 32 bits, so a command with high bits set matches nothing
# here and is refused.
SECCOMP_ALLOWED_IF = {
    "fcntl": (1, (F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC),
              "F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL; no locks, leases or F_NOTIFY"),
    "ioctl": (1, (TCGETS, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX), "TCGETS, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX"),
    "prctl": (0, (PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ),
              "PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_NO_NEW_PRIVS, PR_CAPBSET_READ"),
    "prlimit64": (0, (0,), "its own limits (pid 0): lowering only, as it is not privileged"),
    "socketpair": (0, (socket.AF_UNIX,), "AF_UNIX: a connected pair reaches no one else; asyncio needs one"),
}
# clone makes threads too: allowed with CLONE_THREAD set, never a process.
# clone3 passes its flags in memory seccomp cannot read; ENOSYS makes the C
# library fall back to clone.
SECCOMP_SPECIAL = {"clone": "with CLONE_THREAD set: a thread, never a process",
                   "clone3": "answered ENOSYS, so the C library falls back to clone"}


# What Node.js needs beyond the Python allowlist, found by tracing Node 20
# through start-up, timers, promises, fs, crypto and zlib: the dynamic
# loader's thread-pointer setup (arch_prctl, which execve makes necessary),
# libuv's wake-up descriptor (eventfd2), V8's view of the machine's memory
# (sysinfo) and V8's memory protection keys (pkey_*, which only narrow what
# the process itself may touch).
NODE_SECCOMP_ALLOWED = ("eventfd2", "sysinfo", "pkey_alloc", "pkey_free", "pkey_mprotect")
ARCH_SET_FS, ARCH_GET_FS = 0x1002, 0x1003
NODE_SECCOMP_ALLOWED_IF = {
    "arch_prctl": (0, (ARCH_SET_FS, ARCH_GET_FS), "ARCH_SET_FS, ARCH_GET_FS: the loader's thread pointer"),
}
# execve is allowed for one address only: that of the Node binary's path in
# the fork-server's memory, which the spare calls execve with just after the
# fork. Once Node has replaced the spare's memory nothing is at that address
# that a script could fill, and a script has no way to make a raw system call
# anyway; Landlock lets nothing but the Node binary (and its loader) be
# executed in any case.
NODE_SECCOMP_SPECIAL = {"execve": "only with the fork-server's own pointer to the Node binary's path, once, to start Node"}


def seccomp_allowlist(runtime="python"):
    """The allowlist as `sandbox_check` prints it: one entry per system call."""
    allowed, allowed_if, special = _seccomp_rules(runtime)
    entries = [(name, "") for name in allowed]
    entries += [(name, rule[2]) for name, rule in allowed_if.items()] + list(special.items())
    return [f"{name}: {condition}" if condition else name for name, condition in sorted(entries)]


def _seccomp_rules(runtime):
    if runtime == "node":
        return (SECCOMP_ALLOWED + NODE_SECCOMP_ALLOWED, {**SECCOMP_ALLOWED_IF, **NODE_SECCOMP_ALLOWED_IF},
                {**SECCOMP_SPECIAL, **NODE_SECCOMP_SPECIAL})
    return SECCOMP_ALLOWED, SECCOMP_ALLOWED_IF, SECCOMP_SPECIAL


def compile_seccomp_filter(module_dir=None, runtime="python", exec_path_address=None):
    """Compile the filter once with libseccomp; children load the raw program.

    `module_dir` is where pyseccomp is installed: the fork-server runs without
    site-packages on its path, so it is borrowed for this one import. For
    `runtime="node"`, `exec_path_address` is the address of the Node binary's
    path, the one execve argument allowed.
    """
    if module_dir:
        sys.path.insert(0, module_dir)
    try:
        import pyseccomp
    finally:
        if module_dir:
            sys.path.remove(module_dir)

    deny = pyseccomp.ERRNO(errno.EPERM)
    syscall_filter = pyseccomp.SyscallFilter(defaction=deny)
    # Another architecture's calls (int 0x80, x32) are refused like the rest.
    syscall_filter.set_attr(pyseccomp.Attr.ACT_BADARCH, deny)
    # A binary tree of the allowed calls: a few comparisons per call, not a
    # walk down a hundred.
    syscall_filter.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 2)
    allow = pyseccomp.ALLOW
    allowed, allowed_if, _ = _seccomp_rules(runtime)
    for name in allowed:
        try:
            syscall_filter.add_rule(allow, name)
        except (OSError, RuntimeError, ValueError):
            continue  # not a system call on this architecture
    for name, (argument, values, _) in allowed_if.items():
        for value in values:
            syscall_filter.add_rule(allow, name, pyseccomp.Arg(argument, pyseccomp.EQ, value))
    syscall_filter.add_rule(allow, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, CLONE_THREAD, CLONE_THREAD))
    syscall_filter.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    if runtime == "node":
        syscall_filter.add_rule(allow, "execve", pyseccomp.Arg(0, pyseccomp.EQ, exec_path_address))
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as sink:
        syscall_filter.export_bpf(sink)
    with os.fdopen(read_fd, "rb") as source:
        program = source.read()
    count = len(program) // ctypes.sizeof(SockFilter)
    instructions = (SockFilter * count).from_buffer_copy(program)
    return SockFprog(len=count, filter=ctypes.cast(instructions, ctypes.POINTER(SockFilter))), instructions


def load_seccomp(prog):
    _check(
        LIBC.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0),
        "load seccomp filter",
    )


# --- Landlock ----------------------------------------------------------------


def create_landlock_ruleset(abi, readable_root="/", writable_dir=None, executable_files=()):
    """Read access beneath `readable_root`; beneath `writable_dir` (when
    given), the scratch rights as well; `executable_files` may be executed
    (nothing else may).

    A rule covers what is mounted below its directory later, but not what is
    mounted on the directory itself (the walk up skips a covered mount
    point): `writable_dir` is the parent of the scratch mount point."""
    fs_rights = LANDLOCK_FS_RIGHTS_BY_ABI.get(abi, LANDLOCK_FS_ALL_LATEST)
    attr = LandlockRulesetAttr(
        handled_access_fs=fs_rights,
        handled_access_net=LANDLOCK_NET_ALL if abi >= 4 else 0,
        scoped=(LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL) if abi >= LANDLOCK_SCOPING_ABI else 0,
    )
    size = ctypes.sizeof(LandlockRulesetAttr) if abi >= LANDLOCK_SCOPING_ABI else (16 if abi >= 4 else 8)
    ruleset_fd = _check(syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)), "landlock_create_ruleset")
    _landlock_add_rule(ruleset_fd, readable_root, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
    if writable_dir is not None:
        _landlock_add_rule(ruleset_fd, writable_dir, LANDLOCK_SCRATCH_RIGHTS & fs_rights)
    for path in executable_files:
        _landlock_add_rule(ruleset_fd, path, LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE)
    os.set_inheritable(ruleset_fd, False)
    return ruleset_fd


def _landlock_add_rule(ruleset_fd, path, rights):
    directory_fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        rule = LandlockPathBeneathAttr(allowed_access=rights, parent_fd=directory_fd)
        _check(syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)), "landlock_add_rule")
    finally:
        os.close(directory_fd)


def landlock_restrict_self(ruleset_fd):
    _check(syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)), "landlock_restrict_self")


# --- per-run child layers ----------------------------------------------------


@dataclass
class ChildLimits:
    memory_bytes: int
    cpu_seconds: int
    max_open_files: int = 64
    max_tasks: int = 16
    # The size of the run's scratch space (the most any file there can hold).
    scratch_bytes: int = 0

    @property
    def max_file_bytes(self):
        """RLIMIT_FSIZE: the scratch space's size, and a page more, so that a
        file filling it meets the tmpfs's own ENOSPC rather than EFBIG. Past
        it, a sparse file is EFBIG."""
        return self.scratch_bytes + resource.getpagesize() if self.scratch_bytes else 0


def _cap(which, value):
    resource.setrlimit(which, (value, value))


def set_fixed_rlimits(limits):
    """The limits every run shares, set once on the fork-server and inherited.

    Harmless to the fork-server itself: it writes no regular file and, as
    root, is not counted by RLIMIT_NPROC. (It keeps many descriptors open, so
    the open-files limit is the child's alone.) The file size limit is 0, with
    `limits.max_file_bytes` as its ceiling: the most a run's child, no longer
    privileged, may raise it to for its scratch space.
    """
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits.max_file_bytes))
    _cap(resource.RLIMIT_CORE, 0)
    _cap(resource.RLIMIT_NPROC, limits.max_tasks)
    _cap(resource.RLIMIT_MEMLOCK, 0)
    _cap(resource.RLIMIT_MSGQUEUE, 0)


def set_run_rlimits(limits, address_space_base):
    """The limits that depend on the run (memory, CPU time, its scratch
    space's size), and open files."""
    _cap(resource.RLIMIT_NOFILE, limits.max_open_files)
    _cap(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    _cap(resource.RLIMIT_AS, address_space_base + limits.memory_bytes)
    # Soft below hard: the kernel's answer at the soft limit is SIGXCPU, a
    # death the host reads as a timeout whoever looks at the clock first
    # (with equal limits it is a bare SIGKILL). A plugin ignoring SIGXCPU
    # gets SIGKILL a second later.
    cpu_seconds = max(1, limits.cpu_seconds)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def close_fds_except(keep):
    """Close every descriptor above 2 but `keep`: the child inherits nothing."""
    keep = sorted(set(keep))
    low = 3
    for fd in keep + [None]:
        high = (fd - 1) if fd is not None else 0xFFFFFFFF
        if high >= low:
            if syscall(SYS_CLOSE_RANGE, ctypes.c_uint(low), ctypes.c_uint(high), ctypes.c_uint(0)) != 0:
                os.closerange(low, min(high + 1, 65536))
        if fd is not None:
            low = fd + 1


def no_new_privs_active():
    return LIBC.prctl(ctypes.c_int(PR_GET_NO_NEW_PRIVS), 0, 0, 0, 0) == 1


def describe_host():
    """What this host can give, without changing anything: the basis of the
    start-up report and of fail-closed refusal."""
    is_root = os.geteuid() == 0
    abi = landlock_abi()
    root_v2, available_v2 = _cgroup_v2_root()
    v1 = {c for c in CGROUP_CONTROLLERS if os.path.exists(os.path.join(CGROUP_V1_ROOT, c, "cgroup.procs"))}
    cgroup_controllers = (available_v2 & set(CGROUP_CONTROLLERS)) or v1
    try:
        import pyseccomp  # noqa: F401  (loading it loads libseccomp)

        with open("/proc/self/status") as status:
            seccomp = "Seccomp:" in status.read()
    except (ImportError, OSError):
        seccomp = False
    namespaces = is_root and os.path.exists("/proc/self/ns/pid")
    reasons = {}

    def layer(name, ok, why):
        reasons[name] = (ok, "" if ok else why)

    for name in ("fresh_process", "empty_environment", "closed_fds", "rlimits", "no_new_privs"):
        layer(name, True, "")
    layer("unprivileged_uid", is_root, "needs root to switch each run to its slot's uid")
    for name in ("pid_namespace", "net_namespace", "mount_namespace", "ipc_namespace", "uts_namespace", "readonly_root"):
        layer(name, namespaces, "needs root (CAP_SYS_ADMIN) and namespace support in the kernel")
    layer("landlock", abi >= 1, "kernel without Landlock (needs Linux 5.13+ with landlock in the LSM list)")
    layer("landlock_scoping", *landlock_scoping_state(abi, abi >= 1))
    layer("seccomp", seccomp, "needs libseccomp (libseccomp2) and a kernel with seccomp-bpf")
    for controller in CGROUP_CONTROLLERS:
        layer(
            f"cgroup_{controller}",
            is_root and controller in cgroup_controllers,
            f"no writable {controller} cgroup controller (needs root or a delegated cgroup)",
        )
    return {"layers": reasons, "landlock_abi": abi, "cgroup_version": 2 if root_v2 and available_v2 else 1}


def die_with_parent():
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1 and os.getpid() != 1:
        sys.exit(1)
