import json

from django.core.management.base import BaseCommand

from executions import cache


class Command(BaseCommand):
    help = "Drop every cached result (records a cache_cleared event). Last line: JSON summary."

    def handle(self, *args, **options):
        removed = cache.clear(actor_id="cli")
        self.stdout.write(json.dumps({"cleared": True, "entriesRemoved": removed}))
