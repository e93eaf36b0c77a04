import json

from django.core.management.base import BaseCommand, CommandError

from executions import cache
from plugins.models import Plugin


class Command(BaseCommand):
    help = "Drop the cached results of one plugin (records a cache_invalidated event). Last line: JSON summary."

    def add_arguments(self, parser):
        parser.add_argument("plugin_id")

    def handle(self, *args, plugin_id, **options):
        if not Plugin.objects.filter(slug=plugin_id).exists():
            raise CommandError(f"no plugin {plugin_id!r}")
        removed = cache.invalidate_plugin(plugin_id, actor_id="cli")
        self.stdout.write(json.dumps({"pluginId": plugin_id, "invalidated": True, "entriesRemoved": removed}))
