from django.db import migrations

TIERS = [
    {"name": "free", "daily_limit": 100, "concurrent_limit": 1, "priority": "low"},
    {"name": "pro", "daily_limit": 10000, "concurrent_limit": 5, "priority": "medium"},
    {"name": "enterprise", "daily_limit": None, "concurrent_limit": 10, "priority": "high"},
]


def seed_tiers(apps, schema_editor):
    Tier = apps.get_model("quotas", "Tier")
    for tier in TIERS:
        Tier.objects.update_or_create(name=tier["name"], defaults=tier)


def unseed_tiers(apps, schema_editor):
    apps.get_model("quotas", "Tier").objects.filter(name__in=[t["name"] for t in TIERS]).delete()


class Migration(migrations.Migration):
    dependencies = [("quotas", "0001_initial")]

    operations = [migrations.RunPython(seed_tiers, unseed_tiers)]
