"""The database statements one cache-miss run costs, on each side: the web's
admission of an async `POST /execute`, and the worker's claim, run and
record. Runs in-process on a temporary SQLite database (the real API view,
the real claim, the real sandbox), prints the count and every statement.

    .venv/bin/python bench/query_count.py
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="query-count-")
    for name in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "WAKEUP_DIR"):
        os.environ.pop(name, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "executor_project.settings"
    sys.path.insert(0, ROOT)
    os.chdir(ROOT)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from executions.queue.claims import claim_next
    from executions.runner import close_sandbox_client
    from executions.tasks import run_claimed
    from plugins.services import install_version
    from quotas.models import ApiKey, Organization, Tier

    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(slug="bench", name="Bench", tier=Tier.objects.get(name="enterprise"))
    _, key = ApiKey.issue(organization)
    manifest = {"name": "noop", "version": "1.0.0", "entrypoint": "plugin.py", "actions": {"noop": {"handler": "noop"}}}
    install_version(manifest, {"plugin.json": "{}", "plugin.py": "def noop(params, ctx):\n    return {'ok': True}\n"},
                    activate=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    def submit(i):
        return client.post("/execute", {"pluginId": "noop", "actionName": "noop", "params": {"i": i}, "async": True},
                           format="json")

    try:
        # One run of each side first: per-process caches (bytecode, the
        # fork-server) are warm in a running service.
        submit(0)
        run_claimed(claim_next("high"))
        with CaptureQueriesContext(connection) as web:
            submit(1)
        with CaptureQueriesContext(connection) as worker:
            run_claimed(claim_next("high"))
    finally:
        close_sandbox_client()
    for side, captured in (("web: admission of an async POST /execute", web), ("worker: claim, run, record", worker)):
        statements = [query["sql"] for query in captured.captured_queries]
        transactions = sum(sql.startswith("BEGIN") for sql in statements)
        print(f"{side}: {len(statements)} statements ({transactions} transaction(s))")
        for sql in statements:
            print("   ", sql[:120])


if __name__ == "__main__":
    main()
