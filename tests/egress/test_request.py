"""Method, header and body checks, all refused before any network access."""

from __future__ import annotations

import pytest

from egress.errors import EgressDenied
from egress.fetch import fetch
from egress.policy import EgressPolicy

from .helpers import STRICT, no_dns


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "GET /x", "", None, 1])
def test_methods_refused(method):
    with pytest.raises(EgressDenied) as info:
        fetch(STRICT, method, "http://allowed.test/")
    assert info.value.code == "method_not_allowed"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Bad": "a\r\nInjected: 1"},
        {"X-Bad": "a\nb"},
        {"X-Bad": "a\x00b"},
        {"Bad Name": "x"},
        {"Bad:Name": "x"},
        {"": "x"},
        {"X-Bad": "snowman \u2603"},
        {"X-Bad": ["list"]},
        {f"X-H{i}": "v" for i in range(100)},
        {"X-Big": "v" * 9000},
        {f"X-H{i}": "v" * 8000 for i in range(5)},
        [("only-one",)],
        "not headers",
    ],
)
def test_bad_headers_refused(headers):
    with pytest.raises(EgressDenied) as info:
        fetch(STRICT, "GET", "http://allowed.test/", headers=headers)
    assert info.value.code == "invalid_header"


def test_request_body_cap_checked_before_network():
    policy = EgressPolicy(allowed_domains=["allowed.test"], resolver=no_dns, max_request_bytes=10)
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "POST", "http://allowed.test/", body=b"x" * 11)
    assert info.value.code == "request_too_large"
    with pytest.raises(EgressDenied) as info:
        fetch(policy, "POST", "http://allowed.test/", body={"not": "bytes"})
    assert info.value.code == "invalid_body"
