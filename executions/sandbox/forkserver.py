"""The warm fork-server: one per worker slot, started as a fresh interpreter
(`python -I -S forkserver.py CONFIG_JSON`) with an empty environment, so it
holds no settings, keys or database connections.

Once, at start-up, it enters its own pid/mount/net/ipc/uts namespaces (it is
pid 1 of its pid namespace, so every run it forks is invisible to the host and
dies with it), pivots into a read-only view of the standard library, compiles
the seccomp program and the Landlock ruleset, and makes its slot's cgroups.
Then, for each run, it receives a channel socket from the host, forks a child
that applies the per-run layers and serves the run on that channel, enforces
the wall-clock limit, reaps it and reports how it ended. The fork-server
itself never sees params, secrets or results: those travel on the channel
between the host and the child.
"""

import json
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import confine  # noqa: E402
import protocol  # noqa: E402
import runtime  # noqa: E402

# Imported here so that runs don't pay for them: the modules plugins most use.
PREIMPORTED = (
    "asyncio", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "enum", "fractions", "functools", "hashlib", "heapq", "hmac", "html",
    "ipaddress", "itertools", "math", "numbers", "operator", "pprint", "random", "re", "secrets",
    "statistics", "string", "struct", "textwrap", "time", "typing", "unicodedata", "urllib.parse", "uuid",
    "zlib", "encodings.idna",
)

SANDBOX_ROOT = "/run/plugin-sandbox-root"


class Server:
    def __init__(self, config):
        self.config = config
        self.control = socket.socket(fileno=config["controlFd"])
        self.layers = {name: (True, "") for name in ("fresh_process", "empty_environment", "closed_fds", "rlimits", "no_new_privs")}
        self.uid = config["uid"]
        self.gid = config["gid"]
        self.cgroup = None
        self.seccomp_prog = None
        self.landlock_fd = None
        self.devnull = None
        self.address_space_base = 0

    def mark(self, name, ok, why=""):
        self.layers[name] = (ok, "" if ok else why)

    def try_layer(self, names, action):
        try:
            result = action()
        except (confine.ConfinementError, OSError) as error:
            for name in names:
                self.mark(name, False, str(error))
            return None
        for name in names:
            self.mark(name, True)
        return result

    def setup(self):
        os.environ.clear()
        is_root = os.geteuid() == 0
        if not is_root:
            for name in ("unprivileged_uid", "pid_namespace", "net_namespace", "mount_namespace", "ipc_namespace", "uts_namespace", "readonly_root", "cgroup_memory", "cgroup_pids", "cgroup_cpu"):
                self.mark(name, False, "the fork-server is not root")
        else:
            self.mark("unprivileged_uid", True)
            self.cgroup = self.try_layer((), lambda: confine.create_cgroup_slot(self.config["slot"]))
            for controller in confine.CGROUP_CONTROLLERS:
                ok = bool(self.cgroup and controller in self.cgroup.controllers)
                self.mark(f"cgroup_{controller}", ok, f"no writable {controller} cgroup controller")
        for module in PREIMPORTED:
            __import__(module)
        try:
            self.seccomp_prog = confine.compile_seccomp_filter(self.config.get("seccompModulePath"))
            self.mark("seccomp", True)
        except Exception as error:  # libseccomp missing or refusing: reported, not fatal here
            self.mark("seccomp", False, f"cannot compile the seccomp filter: {error}")
        self.devnull = os.open("/dev/null", os.O_RDWR)
        with open("/proc/self/statm") as statm:
            self.address_space_base = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        if is_root:
            self.enter_namespaces()
        abi = confine.landlock_abi()
        if abi:
            self.landlock_fd = self.try_layer(("landlock",), lambda: confine.create_landlock_ruleset(abi))
        else:
            self.mark("landlock", False, "the kernel offers no Landlock")

    def enter_namespaces(self):
        """Become pid 1 of new namespaces, then pivot into the read-only view."""
        flags = confine.CLONE_NEWNS | confine.CLONE_NEWNET | confine.CLONE_NEWIPC | confine.CLONE_NEWUTS
        namespaces = ("mount_namespace", "net_namespace", "ipc_namespace", "uts_namespace")
        self.try_layer(namespaces, lambda: confine.unshare(flags))
        if not self.layers["mount_namespace"][0]:
            for name in ("pid_namespace", "readonly_root"):
                self.mark(name, False, "no mount namespace")
            return
        try:
            confine.LIBC.sethostname(b"sandbox", 7)
            confine.unshare(confine.CLONE_NEWPID)
        except confine.ConfinementError as error:
            self.mark("pid_namespace", False, str(error))
        else:
            self.mark("pid_namespace", True)
            inner = os.fork()
            if inner:
                # The outer process only keeps the namespace's init company and
                # passes on its fate; it holds no run state.
                self.control.close()
                _, status = os.waitpid(inner, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            confine.die_with_parent()
        sources = confine.readonly_view_sources()
        hidden = [p for p in sys.path if p.endswith("site-packages")]
        self.try_layer(("readonly_root",), lambda: confine.build_readonly_root(SANDBOX_ROOT, sources, hidden))

    def report_ready(self):
        active = {name: {"active": ok, "reason": why} for name, (ok, why) in self.layers.items()}
        self.control.send(json.dumps({"ready": True, "pid": os.getpid(), "layers": active}).encode())

    def serve(self):
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.control, 65536, 1)
            except (ConnectionError, OSError):
                return
            if not message:
                return
            request = json.loads(message)
            if not fds:
                continue
            report = self.run_one(fds[0], request)
            try:
                self.control.send(json.dumps(report).encode())
            except OSError:
                return

    def run_one(self, channel_fd, request):
        limits = confine.ChildLimits(
            memory_bytes=request["memoryBytes"],
            cpu_seconds=int(request["timeoutMs"] / 1000) + 1,
        )
        if self.cgroup:
            self.cgroup.set_limits(limits.memory_bytes, limits.max_tasks)
            oom_before = self.cgroup.oom_kills()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                self.enter_child(channel_fd, limits)
                runtime.serve_one_run(socket.socket(fileno=channel_fd))
            finally:
                os._exit(4)
        os.close(channel_fd)
        timed_out = self.wait_for_exit(pid, request["timeoutMs"] / 1000)
        _, status, usage = os.wait4(pid, 0)
        wall_ms = (time.monotonic() - started) * 1000
        oom_killed = False
        if self.cgroup:
            self.cgroup.kill_all()
            oom_killed = self.cgroup.oom_kills() > oom_before
        return {
            "pid": pid,
            "exitCode": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timedOut": timed_out,
            "oomKilled": oom_killed,
            "wallMs": round(wall_ms, 3),
            "cpuMs": round((usage.ru_utime + usage.ru_stime) * 1000, 3),
            "maxRssBytes": usage.ru_maxrss * 1024,
        }

    def wait_for_exit(self, pid, timeout_seconds):
        pidfd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], timeout_seconds)
        finally:
            os.close(pidfd)
        if ready:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def enter_child(self, channel_fd, limits):
        """Per-run layers, in an order where each step still has the right it
        needs: cgroup join and uid switch as root, then no_new_privs, Landlock,
        closing descriptors, and seccomp last."""
        os.setsid()
        if self.cgroup:
            for fd in self.cgroup.procs_fds.values():
                os.write(fd, b"0")
        confine.set_rlimits(limits, self.address_space_base)
        if self.layers["unprivileged_uid"][0]:
            os.setgroups([])
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        confine.prctl(confine.PR_SET_NO_NEW_PRIVS, 1)
        confine.prctl(confine.PR_SET_DUMPABLE, 0)
        if self.landlock_fd is not None:
            confine.landlock_restrict_self(self.landlock_fd)
        for target in (0, 1, 2):
            os.dup2(self.devnull, target)
        confine.close_fds_except([channel_fd])
        os.chdir("/")
        if self.seccomp_prog is not None:
            confine.load_seccomp(self.seccomp_prog[0])


def main():
    config = json.loads(sys.argv[1])
    confine.die_with_parent()
    server = Server(config)
    server.setup()
    server.report_ready()
    server.serve()


if __name__ == "__main__":
    main()
