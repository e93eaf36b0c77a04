"""Plain helpers shared by the suite (fixtures live in conftest.py).

Importing this module needs no Django settings: the models are imported inside
the functions, so the tests that run without Django (`-p no:django`: the
sandbox suite, the example plugins) can import it too.
"""

import datetime as dt
import io
import json
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXAMPLE_NAMES = sorted(path.name for path in EXAMPLES.iterdir() if (path / "plugin.json").exists())
KEY_PATTERN = re.compile(r"pex_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


def make_tiers():
    from quotas.models import Tier

    tiers = {}
    for name, daily, concurrent, priority in (
        ("free", 100, 1, "low"),
        ("pro", 10000, 5, "medium"),
        ("enterprise", None, 10, "high"),
    ):
        tiers[name], _ = Tier.objects.get_or_create(
            name=name, defaults={"daily_limit": daily, "concurrent_limit": concurrent, "priority": priority}
        )
    return tiers


def install_folder(path, owner=None):
    from plugins.archive import load_plugin_source
    from plugins.services import install_version

    manifest, files = load_plugin_source(str(path))
    return install_version(manifest, files, owner=owner, activate=True)


def install_source(slug, source, actions, *, owner=None, version="1.0.0", **manifest_extra):
    """Install a one-file plugin: `actions` maps action name -> handler name
    (or a dict of action manifest fields)."""
    from plugins.services import install_version

    manifest = {
        "name": slug,
        "version": version,
        "entrypoint": "plugin.py",
        "description": f"test plugin {slug}",
        "actions": {
            name: (spec if isinstance(spec, dict) else {"handler": spec, "params": {"type": "object"}})
            for name, spec in actions.items()
        },
        **manifest_extra,
    }
    return install_version(manifest, {"plugin.json": json.dumps(manifest), "plugin.py": source}, owner=owner, activate=True)


def make_execution(organization, plugin_version, *, status="success", queued_at=None, wait=None, run_ms=None,
                   error_type="", cache_hit=False, cache_key="", memory=None, action="slugify"):
    """An execution record made directly, at a chosen time, for the tests of
    what reads them (stats, dashboard, admin); runs through the real cluster
    are in the integration tests.

    Queued at `queued_at` (default now), it waited `wait` in the queue (None:
    never started) and then ran `run_ms` ms."""
    from django.utils import timezone

    from executions.models import Execution

    queued_at = queued_at or timezone.now()
    started_at = queued_at + wait if wait is not None else None
    finished_at = None
    if status in Execution.TERMINAL:
        finished_at = (started_at or queued_at) + dt.timedelta(milliseconds=run_ms or 0)
    execution = Execution.objects.create(
        organization=organization, plugin_version=plugin_version, action=action, params={}, timeout_ms=30000,
        memory_limit_mb=256, status=status, error_type=error_type, cache_hit=cache_hit, cache_key=cache_key,
        started_at=started_at,
        finished_at=finished_at, execution_time_ms=run_ms, peak_memory_bytes=memory,
    )
    # queued_at is auto_now_add: set the chosen time afterwards.
    Execution.objects.filter(pk=execution.pk).update(queued_at=queued_at)
    execution.queued_at = queued_at
    return execution


def run_command(command, *args, **options):
    """Run a management command; return its stdout lines."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue().splitlines()


def wait_for(predicate, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def make_scaling_event(priority, before, after, reason, at):
    """A sentinel's `worker_pool_scaled` event, as executions.queue.cluster
    records it, dated `at`."""
    from audit.events import record_event
    from audit.models import AuditEvent

    event = record_event(
        AuditEvent.Type.WORKER_POOL_SCALED, actor_id=f"sentinel:{priority}", target_id=priority,
        metadata={"priority": priority, "from": before, "to": after, "reason": reason},
    )
    AuditEvent.objects.filter(pk=event.pk).update(timestamp=at)
    return event
