"""The warm fork-server: one per worker slot, started as a fresh interpreter
(`python -I -S`, see `sandbox.client.FORKSERVER_BOOTSTRAP`) with an empty environment, so it
holds no settings, keys or database connections.

Once, at start-up, it enters its own pid/mount/net/ipc/uts namespaces (it is
pid 1 of its pid namespace, so every child is invisible to the host and dies
with it), pivots into a read-only view of the standard library, compiles the
seccomp program and the Landlock ruleset, and makes its slot's cgroups.

Each run has a scratch directory of its own (SCRATCH_DIR, its TMPDIR): a
fresh tmpfs the fork-server mounts when it hands the run to a spare and takes
away when the run ends. The mount lives in the fork-server's mount namespace
only, and the runs of a slot come one at a time: before a run's scratch is
mounted, every earlier child of the slot has been killed and its scratch
unmounted, so no run ever sees another's files.

Each run gets a fresh child, used once. The child is forked *ahead* of its
run: a spare that has already entered every per-process layer (own session,
slot uid, no_new_privs, Landlock domain, closed descriptors, seccomp) and
waits for its run. When a run arrives the fork-server moves the spare into a
run cgroup, hands it the run's limits and channel, and forks the next spare
while this one runs, so neither the fork nor the layers are on the run's
path. The fork-server never sees params, secrets or results: those travel
on the channel between the host and the child.
"""

import collections
import ctypes
import fcntl
import gc
import json
import os
import resource
import select
import signal
import socket
import time
from dataclasses import dataclass

from . import confine, runtime

# Imported once here so that runs don't pay for them: what plugins use most.
# Kept small on purpose: fork and exit cost grows with the fork-server's
# memory (asyncio alone, through OpenSSL, doubles the fork time).
PREIMPORTED = (
    "collections", "copy", "datetime", "functools", "itertools", "math", "re", "statistics", "string",
    "unicodedata", "urllib.parse",
)

SANDBOX_ROOT = "/run/plugin-sandbox-root"
# Landlock lets a run write beneath SCRATCH_PARENT; each run's tmpfs is
# mounted on SCRATCH_DIR, inside it (a rule does not cover a mount made on
# its own directory).
SCRATCH_PARENT = "/scratch"
SCRATCH_DIR = "/scratch/run"
# Where the package trees appear in the child's view: the parent of every
# plugin version's vendored tree (each run is told the name of its own), and
# the operator's shared site-packages.
VENDORED_PACKAGES_VIEW = "/packages/vendored"
SHARED_PACKAGES_VIEW = "/packages/shared"
# The whole environment a child has. Numerical libraries of the shared set
# (OpenBLAS, OpenMP, MKL) start a thread per CPU when they load; a run may
# have 16 tasks in all, and one run's CPU is capped anyway.
SINGLE_THREADED_LIBRARIES = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Children kept ready ahead of their runs: two, so that back-to-back runs
# each find one that has had a whole run's time to get ready.
SPARES = 2
# Node.js children kept ready, once a slot has had a Node run (a slot that
# never runs JavaScript never pays for one).
NODE_SPARES = 1
# Run cgroups per slot, used in turn, skipping those the spares wait in: a
# run's child may still be exiting when the next run starts, and the spares
# are already waiting in theirs; each must be accounted and killed on its own.
RUN_CGROUPS = ("a", "b", "c", "d", "e", "f")
# Where a Node child finds its runtime script in the view, and the descriptor
# it reads its run on.
NODE_RUNTIME_VIEW = "/usr/lib/plugin-sandbox/node_runtime.js"
NODE_CHANNEL_FD = 3
# Node's own threads count against the slot's task limit: V8 gets one helper
# (--v8-pool-size=1) and libuv two, so a run (about six threads) and a
# waiting spare fit in the 16 tasks a uid may have, with the Python spares.
NODE_THREADPOOL_SIZE = 2
# What V8 prints, on the child's stderr, when its heap limit is reached; the
# child then aborts, and the run is MEMORY_LIMIT_EXCEEDED.
NODE_HEAP_EXHAUSTED_MARKERS = (b"JavaScript heap out of memory", b"Reached heap limit")
# A Node process needs memory of its own besides its heap (code, V8's
# structures, buffers): its heap is given this share of the run's limit.
NODE_HEAP_SHARE = 0.75
NODE_MIN_HEAP_MB = 16
# The kernel checks RLIMIT_CPU on its clock tick: a child it killed for CPU
# has used at least its allowance, give or take a tick.
CPU_LIMIT_SLACK_SECONDS = 0.05
ALWAYS_ACTIVE = ("fresh_process", "empty_environment", "closed_fds", "rlimits", "no_new_privs")


@dataclass
class Spare:
    pid: int
    sock: socket.socket
    cgroup: object
    # A Node spare's limits, fixed when it started (confine.ChildLimits),
    # and the read end of its stderr.
    node_limits: object = None
    stderr_fd: int | None = None

    def ready(self):
        """Whether it can take a run: neither dead nor stopped. Stopped (by
        another run's child, where signals are not scoped) it would hold the
        run until its deadline. A state change seen here is consumed, so a
        spare found not ready is discarded at once."""
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WSTOPPED | os.WNOHANG) is None
        except ChildProcessError:
            return False

    def discard(self):
        self.sock.close()
        if self.stderr_fd is not None:
            os.close(self.stderr_fd)
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # it had exited, and waitid reaped it


@dataclass
class Run:
    run_id: int
    pid: int
    pidfd: int
    cgroup: object
    deadline: float
    started: float
    cpu_seconds: int
    scratch: str | None = None
    done_sock: socket.socket | None = None
    stderr_fd: int | None = None
    timed_out: bool = False
    superseded: bool = False
    answered: bool = False

    def close_done_sock(self):
        if self.done_sock is not None:
            self.done_sock.close()
            self.done_sock = None


class Server:
    def __init__(self, config):
        self.config = config
        self.control = socket.socket(fileno=config["controlFd"])
        self.layers = {name: (True, "") for name in ALWAYS_ACTIVE}
        self.uid = config["uid"]
        self.gid = config["gid"]
        self.max_scratch_bytes = config["maxScratchBytes"]
        self.cgroups = []
        self.seccomp_prog = None
        self.landlock_fd = None
        self.devnull = None
        self.address_space_base = 0
        self.spares = collections.deque()
        self.runs = []
        self.next_cgroup = 0
        # Node.js: None when the host gave no Node binary.
        self.node = config.get("node")
        self.node_unavailable = "no Node.js binary on this host" if not self.node else ""
        self.node_seccomp_prog = None
        self.node_landlock_fd = None
        # The Node binary's path, at an address every child inherits: the one
        # execve argument the Node seccomp filter lets through.
        self.node_path = ctypes.create_string_buffer(self.node["path"].encode()) if self.node else None
        self.node_spares = collections.deque()
        # The limits of the last Node run: those of the next spare.
        self.node_limits = None

    # -- start-up ---------------------------------------------------------------

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
        os.environ.update(SINGLE_THREADED_LIBRARIES)
        is_root = os.geteuid() == 0
        if is_root:
            self.mark("unprivileged_uid", True)
            slot = self.config["slot"]
            self.cgroups = [
                cgroup for cgroup in (
                    self.try_layer((), lambda name=name: confine.create_run_cgroup(f"{slot}/{name}")) for name in RUN_CGROUPS
                ) if cgroup is not None
            ]
            for controller in confine.CGROUP_CONTROLLERS:
                ok = len(self.cgroups) == len(RUN_CGROUPS) and all(controller in c.controllers for c in self.cgroups)
                self.mark(f"cgroup_{controller}", ok, f"no writable {controller} cgroup controller")
        else:
            for name in ("unprivileged_uid", "pid_namespace", "net_namespace", "mount_namespace", "ipc_namespace",
                         "uts_namespace", "readonly_root", "cgroup_memory", "cgroup_pids", "cgroup_cpu"):
                self.mark(name, False, "the fork-server is not root")
        for module in PREIMPORTED:
            __import__(module)
        try:
            self.seccomp_prog = confine.compile_seccomp_filter(self.config.get("seccompModulePath"))
            self.mark("seccomp", True)
        except Exception as error:  # libseccomp missing or refusing: reported, and required by default
            self.mark("seccomp", False, f"cannot compile the seccomp filter: {error}")
        if self.node and self.seccomp_prog is not None:
            try:
                self.node_seccomp_prog = confine.compile_seccomp_filter(
                    self.config.get("seccompModulePath"), runtime="node", exec_path_address=ctypes.addressof(self.node_path))
            except Exception as error:
                self.node_unavailable = f"cannot compile the Node seccomp filter: {error}"
        self.devnull = os.open("/dev/null", os.O_RDWR)
        with open("/proc/self/statm") as statm:
            self.address_space_base = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        if is_root:
            self.enter_namespaces()
        runtime.package_roots.update(self.package_roots())
        abi = confine.landlock_abi()
        if abi:
            writable = SCRATCH_PARENT if self.has_scratch() else None
            self.landlock_fd = self.try_layer(("landlock",), lambda: confine.create_landlock_ruleset(abi, writable_dir=writable))
            if self.node and self.landlock_fd is not None:
                try:
                    self.node_landlock_fd = confine.create_landlock_ruleset(
                        abi, writable_dir=writable, executable_files=(self.node["path"], self.node["loader"]))
                except (confine.ConfinementError, OSError) as error:
                    self.node_unavailable = f"cannot make the Node Landlock ruleset: {error}"
        else:
            self.mark("landlock", False, "the kernel offers no Landlock")
        self.mark("landlock_scoping", *confine.landlock_scoping_state(abi, self.landlock_fd is not None))
        confine.set_fixed_rlimits(confine.ChildLimits(memory_bytes=0, cpu_seconds=0, scratch_bytes=self.max_scratch_bytes))

    def has_scratch(self):
        """Runs get a scratch directory when the read-only view holds its mount point."""
        return self.layers["readonly_root"][0]

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
                # The outer process only waits for the namespace's init and
                # passes on its fate; it holds no run state.
                self.control.close()
                _, status = os.waitpid(inner, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            confine.die_with_parent()
        sources = confine.readonly_view_sources()
        files, links = [], []
        if self.node:
            # The Node binary alone (not the rest of its directory), its
            # libraries and loader, and the runtime script.
            sources = sorted(set(sources) | {d for d in self.node["libraryDirs"] if os.path.isdir(d)})
            files = [(self.node["path"], self.node["path"]), (self.node["runtimeScript"], NODE_RUNTIME_VIEW)]
            links = confine.top_level_links(self.node["interpreter"])
        hidden = confine.third_party_dirs(sources)
        packages = [(source, view, executable) for source, view, executable in self.package_dirs() if source]
        self.try_layer(("readonly_root",), lambda: confine.build_readonly_root(
            SANDBOX_ROOT, sources, hidden, packages, mount_points=(SCRATCH_DIR,), files=files, links=links))

    def package_dirs(self):
        """(host directory or None, where it appears in the view, whether its
        files may be mapped executable): tenants' vendored trees are pure
        Python, so their mount is noexec; the operator's set may hold
        extension modules."""
        return [(self.config.get("vendoredPackagesDir"), VENDORED_PACKAGES_VIEW, False),
                (self.config.get("sharedPackagesDir"), SHARED_PACKAGES_VIEW, True)]

    def package_roots(self):
        """Where the child finds the package directories: in the view, or
        where the host has them when there is no view (no layers to speak of)."""
        in_view = self.layers.get("readonly_root", (False, ""))[0]
        return {
            name: (view if in_view else source)
            for name, (source, view, _) in zip(("vendored", "shared"), self.package_dirs())
            if source
        }

    def node_layers_missing(self):
        """Why Node runs are refused here ("" when they are not): a layer
        that is active for Python runs but could not be built for Node, or
        no memory cgroup (a Node child has no address-space limit: V8
        reserves far more than it uses, so the cgroup is its only wall)."""
        if self.node_unavailable:
            return self.node_unavailable
        if not self.layers["cgroup_memory"][0]:
            return "Node runs need the memory cgroup: " + (self.layers["cgroup_memory"][1] or "missing")
        return ""

    def report_ready(self):
        active = {name: {"active": ok, "reason": why} for name, (ok, why) in self.layers.items()}
        refused = self.node_layers_missing()
        node = {"available": not refused, "reason": refused}
        self.control.send(json.dumps({"ready": True, "pid": os.getpid(), "layers": active, "node": node}).encode())

    # -- the loop ---------------------------------------------------------------

    def serve(self):
        self.replenish_spares()
        while True:
            now = time.monotonic()
            pending = [run for run in self.runs if not run.timed_out]
            timeout = max(0.0, min(run.deadline for run in pending) - now) if pending else None
            watched = [self.control] + [run.pidfd for run in self.runs]
            watched += [run.done_sock for run in self.runs if run.done_sock is not None]
            readable, _, _ = select.select(watched, [], [], timeout)
            # A waiting run comes first; reaping finished ones can wait.
            if self.control in readable:
                try:
                    message, fds, _, _ = socket.recv_fds(self.control, 65536, 1)
                except OSError:
                    return
                if not message:
                    return
                request = json.loads(message)
                if request.get("runtime") == "node":
                    self.start_node_run(request)
                elif fds:
                    self.start_run(fds[0], request)
                elif "answered" in request:
                    self.end_answered_run(request["answered"])
            for run in list(self.runs):
                if run.done_sock is not None and run.done_sock in readable:
                    self.child_says_done(run)
                if run.pidfd in readable:
                    self.reap(run)
            now = time.monotonic()
            for run in self.runs:
                if not run.timed_out and now >= run.deadline:
                    run.timed_out = True
                    self.kill(run)

    def kill(self, run):
        try:
            os.kill(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def claim_cgroup(self):
        """The next free run cgroup in turn, once no child of an earlier run is in
        it (that child was killed when its successor started; it is reaped
        here if it has not been yet)."""
        if not self.cgroups:
            return None
        # Never one a spare waits in, nor the current run's: there are more
        # cgroups than spares and a current run together.
        busy = {id(spare.cgroup) for spare in (*self.spares, *self.node_spares)}
        busy |= {id(run.cgroup) for run in self.runs if not run.superseded}
        for _ in self.cgroups:
            cgroup = self.cgroups[self.next_cgroup]
            self.next_cgroup = (self.next_cgroup + 1) % len(self.cgroups)
            if id(cgroup) not in busy:
                break
        for run in [r for r in self.runs if r.cgroup is cgroup]:
            self.kill(run)
            select.select([run.pidfd], [], [], 5.0)
            self.reap(run)
        return cgroup

    def retire_earlier_runs(self):
        """The host sends a run only once it has the previous answer: a child
        still alive now is exiting, or is a plugin that lied about being done.
        Killed (it makes no further system call) and its scratch unmounted
        before this run's is mounted, it can never see this run's files."""
        for run in self.runs:
            if not run.superseded:
                run.superseded = True
                self.kill(run)
            self.release_scratch(run)

    def run_limits(self, request):
        """(the run's limits, its scratch directory or None)."""
        # Without a scratch space the file size limit stays 0.
        scratch = SCRATCH_DIR if self.has_scratch() else None
        scratch_bytes = min(request["scratchBytes"], self.max_scratch_bytes) if scratch else 0
        limits = confine.ChildLimits(memory_bytes=request["memoryBytes"], cpu_seconds=int(request["timeoutMs"] / 1000) + 1,
                                     scratch_bytes=scratch_bytes)
        return limits, scratch

    def prepare_run(self, spare, limits, scratch):
        """Limits, accounting and scratch space for the run `spare` takes."""
        if spare.cgroup is not None:
            spare.cgroup.set_limits(limits.memory_bytes, limits.max_tasks)
            spare.cgroup.start_accounting()
        if scratch:
            confine.mount_scratch(scratch, limits.scratch_bytes, self.uid, self.gid)

    def add_run(self, request, spare, limits, scratch, done_sock=None):
        started = time.monotonic()
        self.runs.append(
            Run(
                run_id=request["runId"],
                pid=spare.pid,
                pidfd=os.pidfd_open(spare.pid),
                done_sock=done_sock,
                stderr_fd=spare.stderr_fd,
                cgroup=spare.cgroup,
                deadline=started + request["timeoutMs"] / 1000,
                started=started,
                cpu_seconds=limits.cpu_seconds,
                scratch=scratch,
            )
        )

    def start_run(self, channel_fd, request):
        self.retire_earlier_runs()
        spare = self.spares.popleft()
        if not spare.ready():
            spare.discard()
            spare = self.make_spare()
        limits, scratch = self.run_limits(request)
        self.prepare_run(spare, limits, scratch)
        assignment = json.dumps({"memoryBytes": limits.memory_bytes, "cpuSeconds": limits.cpu_seconds,
                                 "scratchDir": scratch, "scratchBytes": limits.scratch_bytes}).encode()
        socket.send_fds(spare.sock, [assignment], [channel_fd])
        os.close(channel_fd)
        self.add_run(request, spare, limits, scratch, done_sock=spare.sock)
        self.replenish_spares()

    def start_node_run(self, request):
        """A Node run: the spare is a Node process already started, reading
        its run from a channel made with it; the host is handed the other
        end. Node cannot be forked, so its spares are started ahead (the
        first of a slot on its first Node run, then one kept ready).

        The limits a Python child sets itself once it has its run (CPU
        time, file size, heap) are set when a Node process starts and
        cannot change after: a spare started for other limits than the
        run's is replaced by one started for the run."""
        self.retire_earlier_runs()
        limits, scratch = self.run_limits(request)
        self.node_limits = limits
        spare = None
        while self.node_spares and spare is None:
            candidate = self.node_spares.popleft()
            if candidate.node_limits == self.node_limits and candidate.ready():
                spare = candidate
            else:
                candidate.discard()
        if spare is None:
            spare = self.make_node_spare(limits)
        self.prepare_run(spare, limits, scratch)
        socket.send_fds(self.control, [json.dumps({"channelFor": request["runId"]}).encode()], [spare.sock.fileno()])
        spare.sock.close()
        self.add_run(request, spare, limits, scratch)
        self.replenish_spares()

    def replenish_spares(self):
        while len(self.spares) < SPARES:
            self.spares.append(self.make_spare())
        while self.node_limits is not None and len(self.node_spares) < NODE_SPARES:
            self.node_spares.append(self.make_node_spare(self.node_limits))

    def child_says_done(self, run):
        """The child wrote DONE (its answer is on the channel) or died (the
        socket's end of file; the reap will report that)."""
        try:
            said_done = run.done_sock.recv(16) == runtime.DONE
        except OSError:
            said_done = False
        run.close_done_sock()
        if said_done:
            self.end_answered_run(run.run_id)

    def end_answered_run(self, run_id):
        """The host has the run's answer: the child has nothing left to do.

        It is killed now (it is exiting anyway, unless it lied about being
        done) and the kernel's account of its CPU and memory goes back at
        once, so the answer needn't wait for the process to be torn down.
        Without cgroups the report waits for the reap, as for any run.
        """
        run = next((r for r in self.runs if r.run_id == run_id and not r.superseded), None)
        if run is None or run.answered:
            return
        run.answered = True
        run.close_done_sock()
        self.kill(run)
        if run.cgroup is None:
            return
        run.superseded = True
        cpu_ms, peak_bytes = run.cgroup.usage()
        self.send_report({"runId": run_id, "answered": True, "cpuMs": cpu_ms, "maxRssBytes": peak_bytes,
                          "wallMs": round((time.monotonic() - run.started) * 1000, 3)})
        # After the report: the host has its answer without waiting for this.
        self.release_scratch(run)

    def release_scratch(self, run):
        """Unmount the run's scratch (once the child is killed or dead). A
        failure ends the fork-server: its next run must not share the mount
        point with an old one (the host starts a new fork-server)."""
        if run.scratch is not None:
            confine.unmount_scratch(run.scratch)
            run.scratch = None

    def send_report(self, report):
        try:
            self.control.send(json.dumps(report).encode())
        except OSError:
            pass

    def reap(self, run):
        _, status, usage = os.wait4(run.pid, 0)
        os.close(run.pidfd)
        run.close_done_sock()
        heap_exhausted = self.node_heap_exhausted(run)
        self.release_scratch(run)
        self.runs.remove(run)
        oom_killed = False
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        # A child that ignored SIGXCPU at its CPU allowance is killed by the
        # kernel a second later: it ran out of time too, even when that came
        # before the wall-clock deadline (this loop woken late on a busy host).
        if killed and not run.timed_out and usage.ru_utime + usage.ru_stime >= run.cpu_seconds - CPU_LIMIT_SLACK_SECONDS:
            run.timed_out = True
        if run.cgroup is not None:
            run.cgroup.kill_all()
            if killed and not run.timed_out:
                oom_killed = run.cgroup.was_oom_killed()
        oom_killed = oom_killed or (heap_exhausted and not run.timed_out)
        if run.superseded:
            return
        cpu_ms, peak_bytes = run.cgroup.usage() if run.cgroup is not None else (None, None)
        self.send_report({
            "runId": run.run_id,
            "answered": run.answered,
            "pid": run.pid,
            "exitCode": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timedOut": run.timed_out,
            "oomKilled": oom_killed,
            "wallMs": round((time.monotonic() - run.started) * 1000, 3),
            "cpuMs": cpu_ms if cpu_ms is not None else round((usage.ru_utime + usage.ru_stime) * 1000, 3),
            "maxRssBytes": peak_bytes if peak_bytes is not None else usage.ru_maxrss * 1024,
        })

    @staticmethod
    def node_heap_exhausted(run):
        """Whether a Node child said, dying, that its heap was full (read
        from its stderr, which nothing else reads)."""
        if run.stderr_fd is None:
            return False
        try:
            os.set_blocking(run.stderr_fd, False)
            said = os.read(run.stderr_fd, 65536)
        except OSError:
            said = b""
        os.close(run.stderr_fd)
        run.stderr_fd = None
        return any(marker in said for marker in NODE_HEAP_EXHAUSTED_MARKERS)

    # -- the child --------------------------------------------------------------

    def make_spare(self):
        """Fork the child for the next run and let it get ready.

        It moves itself into its run cgroup now: moving a process between
        cgroups waits for an RCU grace period (milliseconds on an idle host),
        which is why it is done here, ahead of the run, and not when the run
        arrives."""
        cgroup = self.claim_cgroup()
        server_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                if cgroup is not None:
                    cgroup.adopt(0)
                self.confine_child([child_end.fileno()], self.landlock_fd, self.seccomp_prog)
                runtime.warm_up()
                message, fds, _, _ = socket.recv_fds(child_end, 4096, 1)
                if not fds:
                    os._exit(0)
                assignment = json.loads(message)
                confine.set_run_rlimits(
                    confine.ChildLimits(memory_bytes=assignment["memoryBytes"], cpu_seconds=assignment["cpuSeconds"],
                                        scratch_bytes=assignment["scratchBytes"]),
                    self.address_space_base,
                )
                scratch = runtime.Scratch(assignment["scratchDir"], assignment["scratchBytes"]) if assignment["scratchDir"] else None
                runtime.serve_one_run(socket.socket(fileno=fds[0]), done=child_end, scratch=scratch)
            finally:
                os._exit(4)
        child_end.close()
        return Spare(pid=pid, sock=server_end, cgroup=cgroup)

    def make_node_spare(self, limits):
        """Fork a child, confine it as a Python child is (with Node's own
        seccomp filter and Landlock ruleset) under the run limits `limits`,
        and have it execve Node with the runtime script. Node's start-up
        needs memory: its cgroup gets the run's limit now."""
        cgroup = self.claim_cgroup()
        if cgroup is not None:
            cgroup.set_limits(limits.memory_bytes, limits.max_tasks)
        server_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stderr_read, stderr_write = os.pipe()
        script = NODE_RUNTIME_VIEW if self.layers["readonly_root"][0] else self.node["runtimeScript"]
        argv = [self.node["path"], "--no-addons", "--no-experimental-fetch", "--v8-pool-size=1",
                f"--max-old-space-size={node_heap_mb(limits)}", script, SCRATCH_DIR if self.has_scratch() else ""]
        # No variable from the host: the thread pool's size and, as for a
        # Python run, TMPDIR (which Node reads from the real environment).
        environment = [f"UV_THREADPOOL_SIZE={NODE_THREADPOOL_SIZE}"]
        if self.has_scratch():
            environment.append(f"TMPDIR={SCRATCH_DIR}")
        pid = os.fork()
        if pid == 0:
            try:
                if cgroup is not None:
                    cgroup.adopt(0)
                # Above every descriptor Node should see, then where it sees them.
                channel = fcntl.fcntl(child_end.fileno(), fcntl.F_DUPFD, 10)
                stderr = fcntl.fcntl(stderr_write, fcntl.F_DUPFD, 10)
                os.dup2(channel, NODE_CHANNEL_FD)
                resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
                resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
                # Soft below hard, as for a Python child (set_run_rlimits).
                resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
                self.confine_child([NODE_CHANNEL_FD], self.node_landlock_fd, self.node_seccomp_prog, stderr_fd=stderr)
                execve(self.node_path, argv, environment)
            finally:
                os._exit(5)
        child_end.close()
        os.close(stderr_write)
        return Spare(pid=pid, sock=server_end, cgroup=cgroup, node_limits=limits, stderr_fd=stderr_read)

    def confine_child(self, keep_fds, landlock_fd, seccomp_prog, stderr_fd=None):
        """Per-process layers, in an order where each step still has the right
        it needs: uid switch as root, then no_new_privs, Landlock, closing
        descriptors, and seccomp last. Runs before any plugin code exists here."""
        os.setsid()
        if self.layers["unprivileged_uid"][0]:
            os.setgroups([])
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        confine.prctl(confine.PR_SET_NO_NEW_PRIVS, 1)
        confine.prctl(confine.PR_SET_DUMPABLE, 0)
        if landlock_fd is not None:
            confine.landlock_restrict_self(landlock_fd)
        for target in (0, 1, 2):
            os.dup2(stderr_fd if target == 2 and stderr_fd is not None else self.devnull, target)
        confine.close_fds_except(keep_fds)
        os.chdir("/")
        if seccomp_prog is not None:
            confine.load_seccomp(seccomp_prog[0])


def node_heap_mb(limits):
    return max(NODE_MIN_HEAP_MB, int((limits.memory_bytes >> 20) * NODE_HEAP_SHARE))


def execve(path_buffer, argv, env):
    """Replace this process with `argv`, passing the very buffer the seccomp
    filter allows (os.execve would copy the path elsewhere)."""
    arguments = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
    environment = (ctypes.c_char_p * (len(env) + 1))(*[e.encode() for e in env], None)
    confine.LIBC.execve(path_buffer, arguments, environment)


def main(config_json):
    config = json.loads(config_json)
    confine.die_with_parent()
    server = Server(config)
    server.setup()
    # Objects alive now are never collected: a child's garbage collector then
    # leaves them alone instead of touching (and so copying) every page.
    gc.freeze()
    server.report_ready()
    server.serve()

