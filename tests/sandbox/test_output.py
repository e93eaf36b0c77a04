"""What a hostile plugin sends back: a huge result, huge logs, a log cap it
raises itself or a result frame carrying megabytes of logs, NULs and lone
surrogates. The host caps, truncates or cleans it.

No Django here (`-p no:django` runs it): see tests/sandbox/__init__.py.
"""

from __future__ import annotations

import json

import pytest

from tests.sandbox.helpers import CONTAINED_ERRORS, PeakRss, host_intact, utf8_clean

pytestmark = pytest.mark.slow

# -- output and logs ----------------------------------------------------------------------


def test_huge_result(sandbox, run):
    with PeakRss() as rss:
        result = run("def attack(params, ctx):\n    return 'x' * (2 * 1024 * 1024)\n")
    assert result.error_type == "OUTPUT_LIMIT_EXCEEDED", result
    assert result.result_json is None
    assert rss.growth_mb < 32
    host_intact(sandbox, result)


def test_huge_logs_are_truncated(sandbox, run):
    result = run(
        """
def attack(params, ctx):
    print("y" * 5_000_000)
    for _ in range(50_000):
        print("z" * 100)
        ctx.log("w" * 100)
    return "done"
"""
    )
    assert result.status == "success" and result.result == "done", result
    assert result.logs_truncated is True
    assert sum(len(line.encode()) for line in result.logs) <= 64 * 1024 + 1024
    host_intact(sandbox, result)


LOG_CAP_BYPASS = {
    # The plugin raises the cap of its own (in-process) log buffer.
    "runtime_cap_raised": """
import sys
def attack(params, ctx):
    for holder in (getattr(sys.stdout, "_buffer", None), getattr(ctx, "_logs", None)):
        if holder is not None and hasattr(holder, "max_bytes"):
            holder.max_bytes = 10 ** 9
    for _ in range(3000):
        print("q" * 1000)
    return "done"
""",
    # The plugin writes its own result frame carrying 3 MB of logs.
    "forged_result_frame": """
def attack(params, ctx):
    send_json_frame(ctx, {"op": "result", "status": "success", "resultJson": "1",
                          "logs": ["q" * 1000] * 3000, "logsTruncated": False})
    _os._exit(0)
""",
}


@pytest.mark.parametrize("kind", sorted(LOG_CAP_BYPASS))
def test_log_cap_is_enforced_by_the_host(sandbox, run, kind):
    result = run(LOG_CAP_BYPASS[kind])
    total = sum(len(line.encode()) for line in result.logs)
    assert total <= 64 * 1024 + 1024, f"host accepted {total} bytes of logs (cap 64 KiB), status={result.status}, truncated={result.logs_truncated}"
    host_intact(sandbox, result)


ODD_TEXT = {
    "nul_in_result": "def attack(params, ctx):\n    return {'a\\x00b': 'x\\x00y', 'list': ['\\x00'] * 3}\n",
    "nul_in_logs": "def attack(params, ctx):\n    print('a\\x00b')\n    ctx.log('\\x00\\x00')\n    return 1\n",
    "surrogate_in_result": "def attack(params, ctx):\n    return 'x\\ud800y'\n",
    "surrogate_in_logs": "def attack(params, ctx):\n    print('a\\udcffb')\n    ctx.log('\\ud800')\n    return 1\n",
    "surrogate_in_exception": "def attack(params, ctx):\n    raise ValueError('bad \\ud800 text')\n",
    "invalid_utf8_bytes_in_logs": "import sys\ndef attack(params, ctx):\n    sys.stdout.write(b'\\xff\\xfe\\x00'.decode('utf-8', 'surrogateescape') + '\\n')\n    return 1\n",
}


@pytest.mark.parametrize("kind", sorted(ODD_TEXT))
def test_nul_and_surrogates(sandbox, run, kind):
    result = run(ODD_TEXT[kind])
    if result.status == "success":
        json.loads(result.result_json)
    else:
        assert result.error_type in CONTAINED_ERRORS, result
    assert utf8_clean(result) == [], f"fields with lone surrogates reached the host: {utf8_clean(result)}"
    if kind == "nul_in_result":
        # NUL can't be stored by every database (PostgreSQL's jsonb refuses it):
        # the host replaces it, like a lone surrogate, with U+FFFD.
        assert result.result == {"a\ufffdb": "x\ufffdy", "list": ["\ufffd"] * 3}
    host_intact(sandbox, result)
