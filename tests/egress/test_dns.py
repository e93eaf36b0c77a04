"""DNS checks in fetch (fake resolvers; nothing is contacted unless the answer
is 127.0.0.1)."""

from __future__ import annotations

import time

import pytest

from egress.errors import EgressDenied, EgressFailed
from egress.fetch import fetch
from egress.policy import EgressPolicy

from .helpers import LOCAL, FakeResolver, local_policy


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["0.0.0.0"],
        ["::"],
        ["127.0.0.2"],
        ["::1"],
        ["::ffff:127.0.0.1"],  # mapped form of the permitted address is NOT permitted
        ["64:ff9b::a9fe:a9fe"],
        ["100.64.0.1"],
        ["8.8.8.8", "10.0.0.1"],  # public + private mix (rebinding)
        ["10.0.0.1", "8.8.8.8"],
        [LOCAL, "192.168.1.10"],  # permitted + private mix
        ["fe80::1%eth0"],
    ],
)
def test_resolved_forbidden_addresses_refused(answers, network_guard):
    resolver = FakeResolver({"internal.allowed.test": answers})
    with pytest.raises(EgressDenied) as info:
        fetch(local_policy(resolver), "GET", "http://internal.allowed.test/")
    assert info.value.code == "forbidden_address"
    # The message names the host but does not leak the resolved address.
    assert "internal.allowed.test" in str(info.value)
    for answer in answers:
        if answer != LOCAL:
            assert answer not in str(info.value)
    assert network_guard.targets == []


def test_strict_policy_refuses_loopback_answer(network_guard):
    policy = EgressPolicy(allowed_domains=["localhost", "allowed.test"], resolver=FakeResolver({"localhost": [LOCAL]}))
    for url in ("http://localhost/", "http://allowed.test/"):
        with pytest.raises(EgressDenied) as info:
            fetch(policy, "GET", url)
        assert info.value.code == "forbidden_address"
    assert network_guard.targets == []


@pytest.mark.parametrize("answers", [[], ["not-an-ip"], "127.0.0.1", None])
def test_bad_resolver_answers_fail(answers, network_guard):
    policy = local_policy(lambda host, port: answers)
    with pytest.raises(EgressFailed) as info:
        fetch(policy, "GET", "http://allowed.test/")
    assert info.value.code == "dns_failure"
    assert network_guard.targets == []


def test_dns_failure():
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(), "GET", "http://nxdomain.allowed.test/")
    assert info.value.code == "dns_failure"
    assert "Name or service" not in str(info.value)


def test_hanging_resolver_times_out():
    def slow(host, port):
        time.sleep(2)
        return [LOCAL]

    started = time.monotonic()
    with pytest.raises(EgressFailed) as info:
        fetch(local_policy(slow, timeout_seconds=0.3), "GET", "http://allowed.test/")
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 1.5
