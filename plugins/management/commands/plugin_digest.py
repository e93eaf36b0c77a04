from django.core.management.base import BaseCommand, CommandError

from plugins.archive import load_plugin_source
from plugins.manifest import ManifestError
from plugins.signing import files_digest


class Command(BaseCommand):
    help = (
        "Print the files digest of a plugin (a zip, a folder, or a .py with its plugin.json): "
        "what a publisher signs with Ed25519 for `install_plugin --signature` and POST /plugins."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="A .zip archive, a plugin folder, or a single .py file.")
        parser.add_argument("--manifest", help="The plugin.json of a single .py file, when it is not beside it.")

    def handle(self, *args, path, manifest, **options):
        try:
            _, files = load_plugin_source(path, manifest_path=manifest)
        except ManifestError as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(files_digest(files))
