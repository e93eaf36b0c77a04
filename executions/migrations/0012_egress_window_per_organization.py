from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    """The egress windows are counted per organization and plugin. They hold
    at most the last ten minutes of counts, so the table is made anew rather
    than back-filled: the running minute's counts start again from zero."""

    dependencies = [
        ('executions', '0011_execution_in_flight_index'),
        ('quotas', '0003_organization_secret'),
    ]

    operations = [
        migrations.DeleteModel(name='EgressWindow'),
        migrations.CreateModel(
            name='EgressWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('plugin_slug', models.SlugField(max_length=64)),
                ('window_start', models.DateTimeField()),
                ('count', models.PositiveIntegerField(default=0)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='quotas.organization')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('organization', 'plugin_slug', 'window_start'), name='one_egress_window_per_org_plugin_minute')],
            },
        ),
    ]
