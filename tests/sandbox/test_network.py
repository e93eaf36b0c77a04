"""Hostile plugins against the network: TCP, UDP, IPv6, Unix sockets (paths
and abstract names) reaching listeners on the host, netlink, raw and packet
sockets, vsock, DNS, and socket() through foreign syscall ABIs. No socket
opens and no host listener receives anything.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import time

import pytest

from tests.sandbox.helpers import host_intact

pytestmark = pytest.mark.slow

# -- the network ------------------------------------------------------------------------

SOCKET_ATTACKS = {
    "tcp_connect": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("127.0.0.1", a["tcp_port"]))
    s.sendall(b"pwned")
""",
    "udp_send": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", ("127.0.0.1", a["udp_port"]))
""",
    "ipv6_connect": """
    s = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("::1", a["tcp6_port"] or 80))
""",
    "unix_path_connect": """
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(a["unix_path"])
    s.sendall(b"pwned")
""",
    "unix_path_dgram_via_socketpair": """
    s, _ = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["unix_dgram_path"])
""",
    "abstract_host_socket": """
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["abstract_name"].encode("latin-1"))
""",
    "abstract_host_via_socketpair": """
    s, _ = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b"pwned", a["abstract_name"].encode("latin-1"))
""",
    "netlink": """
    s = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 0)
    s.bind((0, 0))
""",
    "raw_inet": """
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_RAW, _socket.IPPROTO_ICMP)
""",
    "packet": """
    s = _socket.socket(_socket.AF_PACKET, _socket.SOCK_RAW, _socket.htons(3))
""",
    "vsock": """
    s = _socket.socket(40, _socket.SOCK_STREAM)
""",
    "socketpair_inet": """
    s = _socket.socketpair(_socket.AF_INET, _socket.SOCK_STREAM)
""",
    "libc_socket_via_ctypes": """
    r = c_call("socket", 2, 1, 0)
    if r["ret"] == -1:
        raise OSError(r["errno"], r["errname"])
    r2 = sys_call(41, 2, 2, 0)
    if r2["ret"] == -1:
        raise OSError(r2["errno"], r2["errname"])
""",
    "dns_lookup": """
    return _socket.getaddrinfo("example.com", 80)
""",
}


@pytest.mark.parametrize("kind", sorted(SOCKET_ATTACKS))
def test_socket_attack(sandbox, run, kind):
    sandbox.listeners.received()  # drain
    source = "def attack(params, ctx):\n    a = params\n    def go():\n" + "\n".join(
        "    " + line for line in SOCKET_ATTACKS[kind].strip("\n").splitlines()
    ) + "\n    return attempt(go)\n"
    result = run(source, params=sandbox.listeners.addresses())
    assert result.status == "success", result
    assert result.result["blocked"] is True, result.result
    time.sleep(0.05)
    assert sandbox.listeners.received() == {}, "a host listener received something"
    host_intact(sandbox, result)


FOREIGN_ABI_ATTACKS = {
    # socket() through the x32 ABI (nr | 0x40000000), which a filter written for
    # x86_64 numbers could miss.
    "x32_socket": """
def attack(params, ctx):
    return sys_call(0x40000000 + 41, 2, 1, 0)
""",
    # socket() through the i386 ABI (int 0x80, nr 359), same reason.
    "int80_socket": """
import mmap
def attack(params, ctx):
    code = bytes([0xB8]) + (359).to_bytes(4, "little") + bytes([0xBB, 2, 0, 0, 0, 0xB9, 1, 0, 0, 0, 0x31, 0xD2, 0xCD, 0x80, 0xC3])
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    function = _ctypes.CFUNCTYPE(_ctypes.c_int)(_ctypes.addressof(_ctypes.c_char.from_buffer(page)))
    return {"ret": function()}
""",
}


@pytest.mark.parametrize("kind", sorted(FOREIGN_ABI_ATTACKS))
def test_foreign_syscall_abi(sandbox, run, kind):
    sandbox.listeners.received()
    result = run(FOREIGN_ABI_ATTACKS[kind])
    if result.status == "success":
        assert result.result["ret"] < 0, result.result
    else:
        assert result.error_type == "WORKER_CRASHED", result  # killed by the filter (SIGSYS)
    assert sandbox.listeners.received() == {}
    host_intact(sandbox, result)
