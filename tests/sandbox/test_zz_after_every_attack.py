"""After every other module of tests/sandbox: the host canary never leaked into
any result, and both fork-servers are still the same processes and still run
plugins.

Named to sort last: pytest runs the modules of a folder in name order, and the
package-scoped `sandbox` fixture (tests/sandbox/conftest.py) keeps the same
fork-servers for all of them.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import ALL_RESULTS, BENIGN, CANARY, result_text, server_pids

pytestmark = pytest.mark.slow


def test_canary_never_leaked(sandbox):
    assert ALL_RESULTS, "no run was recorded"
    for result in ALL_RESULTS:
        assert CANARY not in result_text(result)


def test_normal_run_still_works_on_the_same_fork_server(sandbox, run, run_b):
    result = run(BENIGN, params={"final": True})
    assert result.status == "success" and result.result == {"ok": True, "echo": {"final": True}}, result
    other = run_b(BENIGN, params={"final": "b"})
    assert other.status == "success" and other.result == {"ok": True, "echo": {"final": "b"}}, other
    assert server_pids(sandbox.a) == sandbox.start_pids["a"], "fork-server A was replaced during the suite"
    assert server_pids(sandbox.b) == sandbox.start_pids["b"], "fork-server B was replaced during the suite"
    assert sandbox.a.missing_layers() == [] and sandbox.b.missing_layers() == []
