"""AuditEvent moved here from `executions` (where it was ExecutionEvent).

State only: the table `executions_executionevent` stays as it is, with its
rows and indexes; `executions` 0008 forgets the model on its side. The
content type is renamed so that admin permissions on the model carry over.
"""

import django.db.models.deletion
from django.db import migrations, models


def rename_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="audit", model="auditevent").exists():
        ContentType.objects.filter(app_label="executions", model="executionevent").update(
            app_label="audit", model="auditevent"
        )


def restore_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="executions", model="executionevent").exists():
        ContentType.objects.filter(app_label="audit", model="auditevent").update(
            app_label="executions", model="executionevent"
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("executions", "0007_cached_result_hits_from_executions"),
        ("quotas", "0003_organization_secret"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("type", models.CharField(choices=[("plugin_action_executed", "Plugin Action Executed"), ("quota_exceeded", "Quota Exceeded"), ("quota_reset", "Quota Reset"), ("cache_invalidated", "Cache Invalidated"), ("cache_cleared", "Cache Cleared"), ("circuit_breaker_state_changed", "Circuit Breaker State Changed"), ("plugin_version_uploaded", "Plugin Version Uploaded"), ("plugin_state_changed", "Plugin State Changed"), ("secret_changed", "Secret Changed"), ("egress_request", "Egress Request"), ("owner_notified", "Owner Notified")], db_index=True, max_length=40)),
                        ("actor_id", models.CharField(blank=True, max_length=200)),
                        ("target_id", models.CharField(blank=True, db_index=True, max_length=200)),
                        ("timestamp", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("organization", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="events", to="quotas.organization")),
                    ],
                    options={
                        "db_table": "executions_executionevent",
                        "ordering": ["-timestamp"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(rename_content_type, restore_content_type),
    ]
