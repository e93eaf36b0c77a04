"""The elastic pool's decisions (executions.queue.scaling)."""

import pytest

from executions.queue.scaling import PoolLimits, PoolState, decide

LIMITS = PoolLimits(minimum=2, maximum=10, queue_depth=50, utilization=0.8, wait_seconds=1.0, idle_timeout_seconds=300)


def state(size=2, busy=0, queued=0, oldest_wait=0.0, longest_idle=0.0):
    return PoolState(size=size, busy=busy, queued=queued, oldest_wait_seconds=oldest_wait,
                     longest_idle_seconds=longest_idle)


@pytest.mark.parametrize("pool, added, why", [
    (state(size=1), 1, "below its minimum"),
    (state(size=4, busy=1, queued=51), 6, "51 runs queued"),          # up to its maximum of 10
    (state(size=4, busy=4, queued=1), 1, "4 of 4 workers busy"),
    (state(size=4, busy=2, queued=3, oldest_wait=1.5), 3, "waited 1.5 s"),  # one per waiting run
])
def test_it_grows_by_a_worker_per_waiting_run_on_each_trigger(pool, added, why):
    step, reason = decide(pool, LIMITS)
    assert step == added and why in reason


@pytest.mark.parametrize("pool", [
    state(size=10, busy=10, queued=500, oldest_wait=30),  # at its maximum
    state(size=4, busy=3, queued=1, oldest_wait=0.2),     # 75 % busy, a fresh run waiting
    state(size=4, busy=4, queued=0),                      # busy, nothing waiting
    state(size=2, longest_idle=1000),                     # idle, but at its minimum
    state(size=4, longest_idle=299),                      # not idle long enough
])
def test_it_stays_as_it_is(pool):
    assert decide(pool, LIMITS) == (0, "")


def test_it_lets_an_idle_worker_go_down_to_its_minimum():
    step, reason = decide(state(size=3, busy=1, longest_idle=300), LIMITS)
    assert step == -1 and "idle for 300 s" in reason
    assert decide(state(size=3, busy=1, queued=1, longest_idle=300), LIMITS)[0] == 0  # not while runs wait
