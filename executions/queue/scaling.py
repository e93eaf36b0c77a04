"""How many workers a cluster should have now: its elastic pool.

A cluster keeps at least its minimum warm, grows (by as many workers as
runs wait, up to its maximum) while its queue is deep (more than
SCALE_UP_QUEUE_DEPTH runs waiting), its workers are busy (more than
SCALE_UP_UTILIZATION of them running with a run waiting), or runs wait long
(the oldest longer than SCALE_UP_WAIT_SECONDS); and shrinks by one worker
that has been idle for WORKER_IDLE_TIMEOUT.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolState:
    size: int
    busy: int
    queued: int
    oldest_wait_seconds: float
    longest_idle_seconds: float


@dataclass(frozen=True)
class PoolLimits:
    minimum: int
    maximum: int
    queue_depth: int
    utilization: float
    wait_seconds: float
    idle_timeout_seconds: float


def decide(state, limits):
    """(n > 0, reason) to add n workers, (-1, reason) to let one go, or (0, "") to stay.

    Growing adds a worker for each run waiting (up to the maximum) at once:
    a worker takes about as long to start as a trivial run takes, so adding
    them one at a time would leave a burst queued behind the first few."""
    if state.size < limits.minimum:
        return limits.minimum - state.size, "below its minimum"
    room = min(limits.maximum - state.size, state.queued)
    if room > 0:
        if state.queued > limits.queue_depth:
            return room, f"{state.queued} runs queued"
        if state.busy / max(state.size, 1) > limits.utilization:
            return room, f"{state.busy} of {state.size} workers busy with runs waiting"
        if state.oldest_wait_seconds > limits.wait_seconds:
            return room, f"the oldest run has waited {state.oldest_wait_seconds:.1f} s"
    if state.size > limits.minimum and not state.queued and state.longest_idle_seconds >= limits.idle_timeout_seconds:
        return -1, f"a worker idle for {state.longest_idle_seconds:.0f} s"
    return 0, ""
