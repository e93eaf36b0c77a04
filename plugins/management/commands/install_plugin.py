from django.core.management.base import BaseCommand, CommandError

from plugins.archive import load_plugin_source
from plugins.manifest import ManifestError
from plugins.services import install_version
from quotas.models import Organization


class Command(BaseCommand):
    help = (
        "Validate and install a plugin version from a zip, a folder, or a .py file with its plugin.json. "
        "Prints '<plugin id> <version>' on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="A .zip archive, a plugin folder, or a single .py file.")
        parser.add_argument("--activate", action="store_true", help="Make it the version that runs by default.")
        parser.add_argument(
            "--owner", metavar="ORG_SLUG", help="The organization owning the plugin; public if omitted."
        )
        parser.add_argument("--manifest", help="The plugin.json of a single .py file, when it is not beside it.")
        parser.add_argument(
            "--signature",
            help="The publisher's base64 Ed25519 signature of the files digest (see `plugin_digest`).",
        )

    def handle(self, *args, path, activate, owner, manifest, signature, **options):
        organization = None
        if owner:
            organization = Organization.objects.filter(slug=owner).first()
            if organization is None:
                raise CommandError(f"no organization {owner!r}")
        try:
            plugin_manifest, files = load_plugin_source(path, manifest_path=manifest)
            version = install_version(
                plugin_manifest, files, owner=organization, activate=activate, actor_id="cli", signature=signature
            )
        except ManifestError as exc:
            listing = "\n".join(f"  {error['field']}: {error['message']}" for error in exc.errors)
            raise CommandError(f"{path} was not installed:\n{listing}") from None
        state = "active" if activate else "inactive; activate it with --activate or in the admin"
        signed = f"signed by {version.signed_by[:16]}" if version.signed_by else "unsigned"
        self.stdout.write(
            f"Installed {version.plugin.slug} {version.version} (sha256 {version.sha256[:12]}, {signed}, {state})"
        )
        self.stdout.write(f"{version.plugin.slug} {version.version}")
