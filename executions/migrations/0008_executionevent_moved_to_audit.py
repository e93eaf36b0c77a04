"""ExecutionEvent is now audit.AuditEvent, on the same table (audit 0001):
forget it here without touching the database."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
        ("executions", "0007_cached_result_hits_from_executions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ExecutionEvent")],
            database_operations=[],
        ),
    ]
