"""Hostile plugins that try privileged or dangerous system calls: setuid,
mount, chroot, namespaces, ptrace and process_vm_readv, io_uring, bpf, keys,
modules, /proc/<pid>/mem, raising rlimits, real-time priority, capabilities,
the hostname. Every call is refused.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import socket

import pytest

from tests.sandbox.helpers import UID_BASE, host_intact

pytestmark = pytest.mark.slow

# -- privileged calls through ctypes ---------------------------------------------------------

LIBC_ATTACKS = {
    "unshare_newuser": "c_call('unshare', _ctypes.c_int(0x10000000))",
    "setuid_0": "c_call('setuid', _ctypes.c_int(0))",
    "setresuid_0": "c_call('setresuid', _ctypes.c_int(0), _ctypes.c_int(0), _ctypes.c_int(0))",
    "mount_tmpfs": "c_call('mount', b'none', b'/usr', b'tmpfs', _ctypes.c_ulong(0), None)",
    "ptrace_attach_init": "c_call('ptrace', _ctypes.c_long(16), _ctypes.c_long(1), None, None)",
    "chroot": "c_call('chroot', b'/usr')",
    "setns": "c_call('setns', _ctypes.c_int(0), _ctypes.c_int(0))",
    "sethostname": "c_call('sethostname', b'pwned', _ctypes.c_size_t(5))",
}


@pytest.mark.parametrize("kind", sorted(LIBC_ATTACKS))
def test_libc_privileged_call(sandbox, run, kind):
    result = run(f"def attack(params, ctx):\n    report = {LIBC_ATTACKS[kind]}\n    report['uid'] = _os.getuid()\n    report['euid'] = _os.geteuid()\n    return report\n")
    assert result.status == "success", result
    report = result.result
    assert report["ret"] == -1, report
    assert report["uid"] != 0 and report["euid"] != 0, report
    host_intact(sandbox, result)


NAMESPACE_ATTACKS = {
    "unshare_user": ("unshare", 0x10000000),
    "unshare_net": ("unshare", 0x40000000),
    "unshare_mount": ("unshare", 0x00020000),
    "unshare_pid": ("unshare", 0x20000000),
    "unshare_user_mount_raw": ("raw_unshare", 0x10000000 | 0x00020000),
    "clone_thread_newuser": ("clone", 0x00010000 | 0x00000800 | 0x00000100 | 0x10000000),
}


@pytest.mark.parametrize("kind", sorted(NAMESPACE_ATTACKS))
def test_create_namespace(sandbox, run, kind):
    how, flags = NAMESPACE_ATTACKS[kind]
    result = run(
        """
def attack(params, ctx):
    how, flags = params["how"], params["flags"]
    if how == "unshare":
        return c_call("unshare", _ctypes.c_int(flags))
    if how == "raw_unshare":
        return sys_call(272, flags)
    r = sys_call(56, flags, 0, 0, 0, 0)  # CLONE_THREAD|CLONE_VM|CLONE_SIGHAND|CLONE_NEWUSER
    return r
""",
        params={"how": how, "flags": flags},
    )
    assert result.status == "success", result
    assert result.result["ret"] == -1, result.result
    host_intact(sandbox, result)


PTRACE_ATTACKS = {
    "attach_init": (16, 1),
    "seize_init": (0x4206, 1),
    "traceme": (0, 0),
    "peekdata_init": (2, 1),
}


@pytest.mark.parametrize("kind", sorted(PTRACE_ATTACKS))
def test_ptrace(sandbox, run, kind):
    request, pid = PTRACE_ATTACKS[kind]
    result = run(
        """
def attack(params, ctx):
    r = c_call("ptrace", _ctypes.c_long(params["request"]), _ctypes.c_long(params["pid"]), None, None)
    vm = sys_call(310, 1, 0, 0, 0, 0, 0)  # process_vm_readv(1, ...)
    return {"ptrace": r, "process_vm_readv": vm}
""",
        params={"request": request, "pid": pid},
    )
    assert result.status == "success", result
    assert result.result["ptrace"]["ret"] == -1 and result.result["ptrace"]["errno"] in (1, 3, 38), result.result
    assert result.result["process_vm_readv"]["ret"] == -1 and result.result["process_vm_readv"]["errname"] == "EPERM", result.result
    host_intact(sandbox, result)


# -- dangerous system calls -------------------------------------------------------------------

DANGEROUS_SYSCALLS = {
    # name: (x86_64 number, arguments)
    "io_uring_setup": (425, (8, 0)),
    "bpf": (321, (0, 0, 0)),
    "keyctl": (250, (0, -3, 0)),
    "add_key": (248, (0, 0, 0, 0, -3)),
    "request_key": (249, (0, 0, 0, 0)),
    "userfaultfd": (323, (0,)),
    "perf_event_open": (298, (0, 0, -1, -1, 0)),
    "personality": (135, (0xFFFFFFFF,)),
    "pidfd_open_init": (434, (1, 0)),
    "open_by_handle_at": (304, (0, 0, 0)),
    "fanotify_init": (300, (0, 0)),
    "syslog_read_all": (103, (3, 0, 0)),
    "reboot_bad_magic": (169, (0, 0, 0, 0)),
    "kexec_load": (246, (0, 0, 0, 0)),
    "init_module": (175, (0, 0, 0)),
    "swapon": (167, (0, 0)),
    "memfd_secret": (447, (0,)),
    "mount_setattr": (442, (-1, 0, 0, 0, 0)),
    "fsopen": (430, (0, 0)),
    "setns": (308, (0, 0)),
    "shmget": (29, (0, 4096, 0o1666)),
    "mq_open": (240, (0, 0, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(DANGEROUS_SYSCALLS))
def test_dangerous_syscall_refused(sandbox, run, name):
    number, args = DANGEROUS_SYSCALLS[name]
    result = run("def attack(params, ctx):\n    return sys_call(params['nr'], *params['args'])\n", params={"nr": number, "args": list(args)})
    assert result.status == "success", result
    assert result.result["ret"] == -1, result.result
    assert result.result["errname"] in ("EPERM", "ENOSYS", "EACCES"), result.result
    host_intact(sandbox, result)


def test_proc_self_mem_write(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    out = {}
    for path in ("/proc/self/mem", "/proc/1/mem", "/proc/{}/mem".format(_os.getppid())):
        def go(path=path):
            fd = _os.open(path, _os.O_RDWR)
            _os.lseek(fd, 0x400000, 0)
            return _os.write(fd, b"\\xcc")
        out[path] = attempt(go)
    return out
"""
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    host_intact(sandbox, result)


# -- limits, priorities, capabilities, names ---------------------------------------------------


def test_raise_rlimits(sandbox, run):
    result = run(
        """
import resource
def attack(params, ctx):
    inf = resource.RLIM_INFINITY
    out = {}
    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_MEMLOCK"):
        which = getattr(resource, name)
        before = resource.getrlimit(which)
        out[name] = attempt(resource.setrlimit, which, (inf, inf))
        out[name]["unchanged"] = resource.getrlimit(which) == before
    out["prlimit_init"] = attempt(resource.prlimit, 1, resource.RLIMIT_AS, (inf, inf))
    return out
"""
    )
    assert result.status == "success", result
    for name, report in result.result.items():
        assert report["blocked"], (name, report)
        if name != "prlimit_init":
            assert report["unchanged"], (name, report)
    host_intact(sandbox, result)


def test_realtime_priority_and_nice(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    return {
        "fifo": attempt(_os.sched_setscheduler, 0, _os.SCHED_FIFO, _os.sched_param(50)),
        "rr": attempt(_os.sched_setscheduler, 0, _os.SCHED_RR, _os.sched_param(1)),
        "nice": attempt(_os.nice, -10),
        "setpriority": attempt(_os.setpriority, _os.PRIO_PROCESS, 0, -20),
        "ioprio_rt": {"blocked": sys_call(251, 1, 0, (1 << 13) | 0)["ret"] == -1},
    }
"""
    )
    assert result.status == "success", result
    assert all(report["blocked"] for report in result.result.values()), result.result
    host_intact(sandbox, result)


def test_no_capabilities_and_no_new_privs(sandbox, run):
    result = run(
        """
class Header(_ctypes.Structure):
    _fields_ = [("version", _ctypes.c_uint32), ("pid", _ctypes.c_int)]
class Data(_ctypes.Structure):
    _fields_ = [("effective", _ctypes.c_uint32), ("permitted", _ctypes.c_uint32), ("inheritable", _ctypes.c_uint32)]
def attack(params, ctx):
    header = Header(0x20080522, 0)
    data = (Data * 2)()
    ret = libc().capget(_ctypes.byref(header), data)
    caps = [(d.effective, d.permitted, d.inheritable) for d in data]
    nnp = libc().prctl(39, 0, 0, 0, 0)
    return {"ret": ret, "caps": caps, "no_new_privs": nnp, "uid": _os.getuid(), "gid": _os.getgid(), "groups": _os.getgroups()}
"""
    )
    assert result.status == "success", result
    report = result.result
    assert report["ret"] == 0 and report["caps"] == [[0, 0, 0], [0, 0, 0]], report
    assert report["no_new_privs"] == 1, report
    assert report["uid"] >= UID_BASE and report["gid"] >= UID_BASE and report["groups"] == [], report
    host_intact(sandbox, result)


def test_hostname_is_not_the_hosts(sandbox, run):
    result = run("def attack(params, ctx):\n    return {'hostname': _socket.gethostname(), 'uname': list(_os.uname())}\n")
    assert result.status == "success", result
    assert result.result["hostname"] != socket.gethostname(), result.result
    host_intact(sandbox, result)
