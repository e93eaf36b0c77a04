"""The audit log moved from `executions` to `audit` without touching its table."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE_THE_MOVE = [("executions", "0007_cached_result_hits_from_executions"), ("audit", None)]


def migrate(targets):
    """Migrate the test database to `targets`; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    graph = executor.loader.graph
    reached = [node for node in graph.leaf_nodes() if node[0] not in {app for app, name in targets if name is None}]
    reached = [next((t for t in targets if t[0] == node[0]), node) for node in reached]
    return executor.loader.project_state(reached).apps


@pytest.mark.django_db(transaction=True)
def test_events_written_before_the_move_are_the_audit_log_after_it():
    old = migrate(BEFORE_THE_MOVE)
    ContentType = old.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label__in=["executions", "audit"], model__in=["executionevent", "auditevent"]).delete()
    content_type = ContentType.objects.create(app_label="executions", model="executionevent")
    Tier = old.get_model("quotas", "Tier")
    Organization = old.get_model("quotas", "Organization")
    organization = Organization.objects.create(slug="acme", name="Acme", tier=Tier.objects.get(name="pro"))
    old.get_model("executions", "ExecutionEvent").objects.create(
        type="quota_reset", organization=organization, target_id="acme", metadata={"usedBefore": 3}
    )

    new = migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    event = new.get_model("audit", "AuditEvent").objects.get()
    assert (event.type, event.organization_id, event.metadata) == ("quota_reset", organization.pk, {"usedBefore": 3})
    # Same content type row, so admin permissions on the model carry over.
    moved = new.get_model("contenttypes", "ContentType").objects.get(pk=content_type.pk)
    assert (moved.app_label, moved.model) == ("audit", "auditevent")
