"""A cluster's worker process: take the oldest queued run of its priority,
run it to its end, repeat (executions.queue.cluster starts and watches it).

It shares nothing with the other workers but a wake-up socket, whose
receive holds no lock: killed at any instant, it leaves at most the one run
it had marked running, which its sentinel gives back at once.
"""

import ctypes
import logging
import signal
import time

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from .. import runner
from ..tasks import run_claimed
from .claims import claim_next

logger = logging.getLogger(__name__)

# A worker's timer, read by its sentinel: the monotonic time by which its
# current run must have ended, or one of these. A worker that has done its
# WORKER_RECYCLE runs says so and keeps serving until its sentinel has
# started its replacement and lets it go (SIGTERM): recycling never leaves
# the pool a worker short.
IDLE = -1.0
RECYCLE_DUE = -2.0

PR_SET_PDEATHSIG = 1
# A claim that failed on the database side (locked past its busy timeout,
# the server gone) is tried again after this long.
CLAIM_RETRY_SECONDS = 1.0


def signal_when_parent_dies(signum):
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def serve(priority, timer, wakeups, recycle):
    """The worker's life: runs until SIGTERM (after the run in progress): from
    its sentinel, when it has been replaced after `recycle` runs or is let go
    as idle, or when the sentinel dies."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal_when_parent_dies(signal.SIGTERM)
    runs = 0
    ran = False
    try:
        while not stopping:
            try:
                # Right after a run the queue is likely not empty: no look first.
                execution = claim_next(priority, look_first=not ran)
            except DatabaseError:
                logger.exception("could not take a run from the %s queue", priority)
                close_old_connections()
                time.sleep(CLAIM_RETRY_SECONDS)
                continue
            ran = execution is not None
            if execution is None:
                wakeups.take(settings.QUEUE_IDLE_POLL_SECONDS)
                continue
            timer.value = time.monotonic() + execution.timeout_ms / 1000 + settings.EXECUTION_LEASE_GRACE_SECONDS
            try:
                run_claimed(execution)
            finally:
                runs += 1
                timer.value = RECYCLE_DUE if recycle and runs >= recycle else IDLE
    finally:
        # A process started by multiprocessing ends without atexit handlers.
        runner.close_sandbox_client()
