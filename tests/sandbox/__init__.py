"""Hostile plugins against the real sandbox (pure pytest: no Django, no DB).

Run: cd /work/main && .venv/bin/python -m pytest tests/sandbox -q -p no:django

Nothing here imports Django: the sandbox is Django-free, and so are
tests/conftest.py and tests/factories.py at import time (Django and DRF are
imported inside the fixtures and helpers that need them, and the session's
autouse cluster check does nothing without pytest-django), so `-p no:django`
alone is enough. Keep it that way: a Django import at module level in any of
them breaks this run. (Do not pass --noconftest: this package's own fixtures
are in tests/sandbox/conftest.py.)

The clients use their own uid range (helpers.UID_BASE) so that these runs
never share a uid -- and so an RLIMIT_NPROC count -- with a dev server or
qcluster running beside the tests with the default one.

Every test runs a plugin that tries to break out (or to break the host) and
asserts both that the attempt failed -- from the plugin's own report of what it
observed, or from how the run ended -- and that the host was not touched: no
file appeared on the host, no listener received anything, the canary put in
this process's environment never came back, the fork-servers are the same live
processes and nothing is left running under them.

One pair of fork-servers (the package-scoped `sandbox` fixture in conftest.py)
serves every module; test_zz_after_every_attack.py, named to sort last, looks
at them once every attack has run.
"""

import pytest

# helpers.py makes the host-side checks (host_intact, run_on): let pytest
# explain their failures as it does a test's own asserts.
pytest.register_assert_rewrite("tests.sandbox.helpers")
