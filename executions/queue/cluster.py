"""The engine's django-q2 cluster: one per priority, its workers taking runs
straight from the executions table.

django-q2's stock cluster hands tasks from a pusher process to its workers
through a multiprocessing.Queue, and results back to a monitor through
another. A worker SIGKILLed while blocked in that queue's get() dies
holding the queue's read lock (a POSIX semaphore nobody releases), and every
other worker of the cluster, reincarnated ones included, then waits on it
forever while the heartbeat stays fresh; tasks the pusher had taken stay
locked in the broker until its `retry` (minutes). So this cluster keeps
django-q2's process model and its heartbeat (`Stat`, which /health, /stats
and the admin read), and replaces what passes between processes:

- each worker claims its next run itself (executions.queue.claims): no
  pusher, no monitor, no prefetched task to strand;
- a worker's timer is lock-free shared memory that only the worker writes:
  the sentinel reads it and never takes a lock a dead worker could hold;
- the sentinel gives back a dead worker's run at once (run again when safe,
  else WORKER_CRASHED), reaps the whole queue every REAPER_INTERVAL_SECONDS,
  and stops on SIGTERM by draining: workers finish their runs for up to
  SHUTDOWN_GRACE_SECONDS, what is left is given back;
- workers die with their sentinel, and the sentinel with its cluster's main
  process (PR_SET_PDEATHSIG), so no orphan keeps working unwatched;
- beside the workers, one courier process sends the callbacks of the
  priority's runs (executions.queue.courier): a slow receiver never holds
  a worker.
"""

import gc
import logging
import os
import signal
import time
import uuid
from multiprocessing import Event, RawValue

from django import db
from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from django_q.cluster import Cluster, Sentinel, get_mp_context
from django_q.conf import Conf
from django_q.humanhash import humanize
from django_q.status import Stat

from audit.events import record_event
from audit.models import AuditEvent
from core.metrics_files import fold_dead_process

from .. import reaper, supervision
from ..lifecycle import queue_topic
from ..models import Execution
from . import courier
from .scaling import PoolLimits, PoolState, decide
from .wakeups import SharedWaiter
from .worker import IDLE, RECYCLE_DUE, serve, signal_when_parent_dies

logger = logging.getLogger(__name__)


def cluster_priority():
    """The priority this process's cluster serves (Q_CLUSTER_NAME)."""
    priorities = {cluster: priority for priority, cluster in settings.PRIORITY_CLUSTERS.items()}
    try:
        return priorities[Conf.CLUSTER_NAME]
    except KeyError:
        raise RuntimeError(
            f"Q_CLUSTER_NAME={Conf.CLUSTER_NAME!r} names no priority's cluster; one of: {', '.join(priorities)}"
        ) from None


class ClusterHeartbeat(Stat):
    """django-q2's heartbeat of a cluster, saying also which priority it
    serves and how many of its workers are running a run (/health tells a
    stalled cluster from a busy one with these)."""

    def __init__(self, sentinel):
        super().__init__(sentinel)
        self.priority = sentinel.priority
        self.busy = sum(1 for process in sentinel.pool if process.timer.value > 0)


class ExecutionSentinel(Sentinel):
    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None, start=True):
        # django-q2's task and result queues are created, but stay empty: no
        # process of this cluster reads or writes them (module docstring).
        super().__init__(stop_event, start_event, cluster_id, broker, timeout, start=False)
        self.priority = cluster_priority()
        self.pool_limits = PoolLimits(
            minimum=settings.PRIORITY_MIN_WORKERS[self.priority],
            maximum=self.pool_size,
            queue_depth=settings.SCALE_UP_QUEUE_DEPTH,
            utilization=settings.SCALE_UP_UTILIZATION,
            wait_seconds=settings.SCALE_UP_WAIT_SECONDS,
            idle_timeout_seconds=settings.WORKER_IDLE_TIMEOUT,
        )
        self.started = False
        self.stopping = False
        signal.signal(signal.SIGTERM, self.request_stop)
        signal_when_parent_dies(signal.SIGTERM)
        self.wakeups = SharedWaiter(queue_topic(self.priority))
        if start:
            self.start()

    def request_stop(self, signum, frame):
        self.stopping = True

    def beat(self):
        ClusterHeartbeat(self).save()

    def name_for_logs(self):
        return humanize(self.cluster_id.hex) + f" [{self.queue_name()}]"

    # -- the pool ---------------------------------------------------------------

    def spawn_cluster(self):
        self.pool = []
        self.courier = None
        self.beat()
        for __ in range(self.pool_limits.minimum):
            self.spawn_worker()
        self.spawn_courier()

    def spawn_courier(self):
        close_connections_before_fork()
        self.courier = get_mp_context().Process(target=courier.serve, args=(self.priority,), name="courier")
        self.courier.daemon = True
        self.courier.start()

    def replace_courier(self):
        """The courier died: its delivery in hand is sent again when its lease lapses."""
        self.courier.join()
        self.fold_metrics_of(self.courier)
        logger.critical("the %s courier (pid %s) died (exit code %s)", self.priority, self.courier.pid,
                        self.courier.exitcode)
        try:
            supervision.record_process_restart(
                "courier", supervisor=f"sentinel:{self.priority}", pid=self.courier.pid,
                detail=f"exit code {self.courier.exitcode}",
            )
        except db.DatabaseError:
            logger.exception("could not record the restart of the %s courier", self.priority)
        self.spawn_courier()

    def spawn_worker(self):
        close_connections_before_fork()
        # The collector must not walk the objects the worker inherits: that
        # writes to every page of them and copies them all (measured: 9,900
        # page faults per new worker without, 3,600 with).
        gc.freeze()
        timer = RawValue("d", IDLE)
        process = get_mp_context().Process(
            target=serve, args=(self.priority, timer, self.wakeups, Conf.RECYCLE), name=f"Process-{uuid.uuid4().hex}"
        )
        process.daemon = True
        process.timer = timer
        process.idle_since = time.monotonic()
        process.retiring = ""
        self.pool.append(process)
        process.start()
        return process

    def replace_worker(self, process):
        """A worker ended: give back the run it held, start another one."""
        self.pool.remove(process)
        process.join()
        self.fold_metrics_of(process)
        if process.retiring and process.exitcode == 0:
            logger.info("%s worker %s", process.retiring, process.name)
            return
        self.reincarnations += 1
        logger.critical("worker %s (pid %s) died (exit code %s)", process.name, process.pid, process.exitcode)
        self.give_back_runs_of({process.pid})
        try:
            supervision.record_process_restart(
                "worker", supervisor=f"sentinel:{self.priority}", pid=process.pid, detail=f"exit code {process.exitcode}"
            )
        except db.DatabaseError:
            logger.exception("could not record the restart of worker %s", process.pid)
        # One that was being replaced or let go has no successor to start.
        if not self.stopping and not process.retiring:
            self.spawn_worker()

    def fold_metrics_of(self, process):
        """A child that ended: its counts stay in the totals, in this
        sentinel's archive; its gauges go, and so do its files."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            fold_dead_process(process.pid, f"archive-{self.priority}-{os.getpid()}", os.environ["PROMETHEUS_MULTIPROC_DIR"])

    def give_back_runs_of(self, pids):
        try:
            reaper.give_back_runs_of_dead_workers(self.priority, dead_pids=pids)
        except db.DatabaseError:
            logger.exception("could not give back the runs of workers %s", sorted(pids))

    # -- watching -----------------------------------------------------------------

    def status(self):
        if not self.started:
            return Conf.STARTING
        if self.stopping:
            return Conf.STOPPING if self.pool else Conf.STOPPED
        return Conf.WORKING if any(p.timer.value > 0 for p in self.pool) else Conf.IDLE

    def guard(self):
        logger.info("%s guarding cluster %s", self.name, self.name_for_logs())
        self.started = True
        self.start_event.set()
        self.beat()
        logger.info("Q Cluster %s running.", self.name_for_logs())
        cycle = Conf.GUARD_CYCLE
        next_reap = 0.0
        while not self.stopping:
            now = time.monotonic()
            for process in list(self.pool):
                if not process.is_alive():
                    self.replace_worker(process)
                elif 0 < process.timer.value < now:
                    logger.critical("worker %s passed its run's timeout; killing it", process.name)
                    process.kill()
            if not self.courier.is_alive():
                self.replace_courier()
            if now >= next_reap:
                self.reap()
                next_reap = now + settings.REAPER_INTERVAL_SECONDS
            self.recycle()
            self.scale(now)
            self.beat()
            time.sleep(cycle)
        self.stop()

    def recycle(self):
        """Replace each worker that has done its WORKER_RECYCLE runs: the new
        one first, then the old one is let go (it ends its run in hand)."""
        for process in list(self.pool):
            if process.timer.value == RECYCLE_DUE and not process.retiring and process.is_alive():
                self.spawn_worker()
                self.let_go(process, "recycled")

    def let_go(self, process, why):
        process.retiring = why
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def scale(self, now):
        """Grow or shrink the pool, as executions.queue.scaling decides."""
        working = [p for p in self.pool if not p.retiring]
        for process in working:
            if process.timer.value > 0:
                process.idle_since = None
            elif process.idle_since is None:
                process.idle_since = now
        idle = [p for p in working if p.idle_since is not None]
        try:
            queued, oldest = (
                Execution.objects.filter(status=Execution.Status.QUEUED, priority=self.priority)
                .aggregate(count=Count("pk"), oldest=Min("queued_at")).values()
            )
        except db.DatabaseError:
            logger.exception("could not read the %s queue to size the pool", self.priority)
            return
        state = PoolState(
            size=len(working),
            busy=len(working) - len(idle),
            queued=queued,
            oldest_wait_seconds=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
            longest_idle_seconds=max((now - p.idle_since for p in idle), default=0.0),
        )
        step, reason = decide(state, self.pool_limits)
        for __ in range(max(step, 0)):
            self.spawn_worker()
        if step < 0:
            self.let_go(min(idle, key=lambda p: p.idle_since), "let idle")
        if step:
            self.record_scaling(state.size, state.size + step, reason)

    def record_scaling(self, before, after, reason):
        logger.info("%s pool: %s -> %s workers (%s)", self.priority, before, after, reason)
        try:
            record_event(
                AuditEvent.Type.WORKER_POOL_SCALED, actor_id=f"sentinel:{self.priority}", target_id=self.priority,
                metadata={"priority": self.priority, "from": before, "to": after, "reason": reason},
            )
        except db.DatabaseError:
            logger.exception("could not record the %s pool's scaling", self.priority)

    def reap(self):
        try:
            done = reaper.reap(self.priority)
        except db.DatabaseError:
            logger.exception("the %s queue's reaper failed", self.priority)
            return
        if any(done.values()):
            logger.warning("reaper (%s): %s", self.priority, done)

    def stop(self):
        """Drain: workers finish the runs they hold, for up to SHUTDOWN_GRACE_SECONDS;
        the runs of those still busy then are given back."""
        self.stopping = True
        logger.info("%s stopping cluster %s", self.name, self.name_for_logs())
        for process in self.pool:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE_SECONDS
        while any(p.is_alive() for p in self.pool) and time.monotonic() < deadline:
            self.beat()
            time.sleep(0.1)
        overdue = {p.pid for p in self.pool if p.is_alive()}
        for process in self.pool:
            if process.pid in overdue:
                logger.warning("worker %s still busy after %s s; killing it", process.name, settings.SHUTDOWN_GRACE_SECONDS)
                process.kill()
            process.join()
        if overdue:
            self.give_back_runs_of(overdue)
        self.pool = []
        self.stop_courier()
        self.wakeups.close()
        self.beat()
        logger.info("Q Cluster %s stopped.", self.name_for_logs())

    def stop_courier(self):
        """After the workers (the runs they end may have callbacks): the
        courier ends its attempt in hand; one still sending after its
        timeout is killed, and that delivery is sent again later."""
        if self.courier is None or not self.courier.is_alive():
            return
        os.kill(self.courier.pid, signal.SIGTERM)
        self.courier.join(settings.CALLBACK_TIMEOUT_SECONDS + 1)
        if self.courier.is_alive():
            self.courier.kill()
            self.courier.join()


def close_connections_before_fork():
    """No database connection may cross a fork: parent and child would share
    it (a SQLite handle with its snapshot and locks, a PostgreSQL socket
    whose answers either may read: a sentinel's reaper once read the answer
    to its worker's BEGIN). A pooled connection (POSTGRES_CONNECTION_POOL
    set for every process) is not closed but kept in its pool: the pool
    goes too, and the next query makes another."""
    db.connections.close_all()
    for connection in db.connections.all(initialized_only=True):
        if connection.settings_dict.get("OPTIONS", {}).get("pool"):
            connection.close_pool()


class ExecutionCluster(Cluster):
    """django-q2's Cluster (the `qcluster` main process) with the engine's sentinel."""

    def start(self):
        self.stop_event = Event()
        self.start_event = Event()
        close_connections_before_fork()
        self.sentinel = get_mp_context().Process(
            target=ExecutionSentinel,
            name=f"Process-{uuid.uuid4().hex}",
            args=(self.stop_event, self.start_event, self.cluster_id, self.broker, self.timeout),
        )
        self.sentinel.start()
        logger.info("Q Cluster %s starting.", self.name)
        while not self.start_event.is_set():
            if not self.sentinel.is_alive():
                raise RuntimeError(f"Q Cluster {self.name} failed to start: sentinel exited with code {self.sentinel.exitcode}")
            time.sleep(0.1)
        return self.pid

    def stop(self):
        """Ask the sentinel to drain and wait for it (SIGTERM: it shares no lock with us)."""
        self.stopping = True
        if self.sentinel is None or not self.sentinel.is_alive():
            return False
        logger.info("Q Cluster %s stopping.", self.name)
        os.kill(self.sentinel.pid, signal.SIGTERM)
        self.sentinel.join()
        logger.info("Q Cluster %s has stopped.", self.name)
        return True

    def serve(self):
        """Start, then wait for the sentinel: returns the process's exit status,
        non-zero if the sentinel died without being asked to stop."""
        self.stopping = False
        self.start()
        self.sentinel.join()
        return 0 if self.stopping else 1
