import core.fields
from django.db import migrations

COLUMNS = ("params", "result", "error_details")


def set_type(type_name):
    def alter(apps, schema_editor):
        # SQLite keeps JSON as text already: only PostgreSQL's column changes.
        if schema_editor.connection.vendor == "postgresql":
            for column in COLUMNS:
                schema_editor.execute(
                    f'ALTER TABLE "executions_execution" ALTER COLUMN "{column}" TYPE {type_name} USING "{column}"::{type_name}'
                )

    return alter


class Migration(migrations.Migration):

    dependencies = [
        ('executions', '0014_execution_error_details'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='execution',
                    name='error_details',
                    field=core.fields.VerbatimJSONField(blank=True, help_text='What the plugin said of params it rejected (ctx.reject), secrets redacted.', null=True),
                ),
                migrations.AlterField(
                    model_name='execution',
                    name='params',
                    field=core.fields.VerbatimJSONField(default=dict),
                ),
                migrations.AlterField(
                    model_name='execution',
                    name='result',
                    field=core.fields.VerbatimJSONField(blank=True, null=True),
                ),
            ],
            database_operations=[migrations.RunPython(set_type("json"), set_type("jsonb"))],
        ),
    ]
