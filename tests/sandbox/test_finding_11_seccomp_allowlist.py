"""Finding 11: seccomp is an allowlist.

A denylist lets through whatever it forgot and whatever the kernel adds
next. Each call below was reachable that way; now every call not on the
list fails with EPERM -- an OSError for the plugin, not a dead process -- and
so do numbers the kernel does not (yet) have and other ABIs' calls. Each call
is made by number through ctypes, with arguments it would accept or reject
with another errno if it were allowed.
"""

import pytest

from tests.sandbox.helpers import host_intact

BUFFER = "buf = _ctypes.create_string_buffer(4096)\n    address = _ctypes.addressof(buf)\n"

# name: (x86_64 number, arguments; "address" stands for a writable buffer)
NAMED = {
    "modify_ldt": (154, (0, "address", 16)),  # read the LDT: 0 if allowed
    "splice": (275, (-1, 0, -1, 0, 1, 0)),
    "tee": (276, (-1, -1, 1, 0)),
    "vmsplice": (278, (-1, 0, 0, 0)),
    "inotify_init": (253, ()),
    "inotify_add_watch": (254, (-1, "address", 0xFFF)),
    "inotify_rm_watch": (255, (-1, 1)),
    "inotify_init1": (294, (0,)),
    "statmount": (457, (0, 0, 0, 0)),
    "listmount": (458, (0, 0, 0, 0)),
    "open_tree_attr": (467, (-1, "address", 0, 0, 0)),
    "sysinfo": (99, ("address",)),
    "sched_setattr": (314, (0, 0, 0)),
    # SECCOMP_SET_MODE_FILTER with SECCOMP_FILTER_FLAG_NEW_LISTENER
    "seccomp_listener": (317, (1, 8, 0)),
    # SECCOMP_GET_ACTION_AVAIL: the call itself, however harmless the question
    "seccomp_action_avail": (317, (2, 0, "address")),
    # prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL): the other way to stack a filter
    "prctl_set_seccomp": (157, (22, 2, 0, 0, 0)),
    "fcntl_setlk_high_bits": (72, (0, 6 | (1 << 32), 0)),  # the kernel reads F_SETLK
    "not_a_syscall_yet": (600, ()),
    "far_beyond_the_table": (100000, ()),
    "x32_getpid": (0x40000000 | 39, ()),
}


@pytest.mark.parametrize("name", sorted(NAMED))
def test_call_outside_the_allowlist_is_refused_with_eperm(sandbox, run, name):
    number, args = NAMED[name]
    call_args = ", ".join(["address" if a == "address" else str(a) for a in args])
    result = run(
        f"def attack(params, ctx):\n    {BUFFER}    return sys_call({number}{', ' if call_args else ''}{call_args})\n"
    )
    assert result.status == "success", result
    assert result.result["ret"] == -1 and result.result["errname"] == "EPERM", result.result
    host_intact(sandbox, result)


def test_what_runs_need_is_still_allowed(sandbox, run):
    result = run(
        """
import asyncio, fcntl, resource, threading, time
def attack(params, ctx):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("thread", True)); t.start(); t.join()
    async def main():
        await asyncio.sleep(0.001)
        return "async"
    out["asyncio"] = asyncio.run(main())
    r, w = _os.pipe()
    out["flags"] = fcntl.fcntl(r, fcntl.F_GETFL) >= 0
    _os.set_blocking(r, False)
    out["rlimit"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    out["sleep"] = time.sleep(0.001) is None
    out["listdir"] = len(_os.listdir(_os.path.dirname(_os.__file__))) > 0
    out["getpid"] = _os.getpid() > 0
    return out
"""
    )
    assert result.status == "success", result
    assert result.result == {"thread": True, "asyncio": "async", "flags": True, "rlimit": 64, "sleep": True,
                             "listdir": True, "getpid": True}, result.result
    host_intact(sandbox, result)
