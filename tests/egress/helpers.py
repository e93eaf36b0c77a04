"""Plain helpers shared by the egress tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket

from egress.policy import EgressPolicy

LOCAL = "127.0.0.1"


class FakeResolver:
    """host -> list of IPs (or a callable producing them per call)."""

    def __init__(self, mapping=None):
        self.mapping = {
            "allowed.test": [LOCAL],
            "api.allowed.test": [LOCAL],
            "other.test": [LOCAL],
        }
        self.mapping.update(mapping or {})
        self.calls = []

    def __call__(self, host, port):
        self.calls.append(host)
        answer = self.mapping.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if callable(answer):
            return answer()
        return list(answer)


def local_policy(resolver=None, **overrides):
    settings = dict(
        allowed_domains=["allowed.test", "*.allowed.test"],
        permitted_addresses=frozenset({LOCAL}),
        allow_any_port=True,
        resolver=resolver or FakeResolver(),
        timeout_seconds=5,
    )
    settings.update(overrides)
    return EgressPolicy(**settings)


def no_dns(host, port):
    raise AssertionError(f"resolver must not be called (host={host!r})")


STRICT = EgressPolicy(allowed_domains=["allowed.test", "*.allowed.test"], resolver=no_dns)


def echo(resp):
    """The request as the test server's /echo route saw it."""
    data = json.loads(resp.body)
    data["headers"] = {k.lower(): v for k, v in data["headers"]}
    return data
