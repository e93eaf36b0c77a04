import json
import secrets
import shlex

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from plugins.archive import load_plugin_source
from plugins.manifest import ManifestError, validate_manifest
from plugins.models import PluginVersion
from plugins.packages import shared_site_packages
from plugins.services import install_version
from quotas.models import ApiKey, Organization, Tier

EXAMPLES_DIR = settings.BASE_DIR / "examples"
DEMO_ORGANIZATION = "demo"
DEMO_TIER = "pro"
# Generous enough to load-test the service with the demo key (docs/benchmarks.md).
DEMO_LIMITS = {"concurrent_limit_override": 500, "daily_limit_override": 1_000_000}


class Command(BaseCommand):
    help = (
        "Set up the demo: the 'demo' organization, the example plugins (public and active) and an 'admin' "
        "superuser if there is none. Safe to run again. Issues a fresh operator (staff) key and a fresh demo API "
        "key each run, since keys are stored hashed, and prints the demo key alone on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-admin", action="store_true", help="Do not create the 'admin' superuser.")

    def handle(self, *args, no_admin, **options):
        tier = Tier.objects.filter(name=DEMO_TIER).first()
        if tier is None:
            raise CommandError(f"tier {DEMO_TIER!r} is missing; run `manage.py migrate` first")
        organization, created = Organization.objects.get_or_create(
            slug=DEMO_ORGANIZATION, defaults={"name": "Demo Org", "tier": tier, **DEMO_LIMITS}
        )
        self.stdout.write(f"Organization {organization.slug}: {'created' if created else 'already there'}")
        manifests = [
            manifest
            for folder in sorted(EXAMPLES_DIR.iterdir())
            if (folder / "plugin.json").is_file() and (manifest := self.install_example(folder))
        ]
        if not no_admin:
            self.create_admin()
        issued = f"{timezone.now():%Y%m%d-%H%M%S}"
        _, operator_key = ApiKey.issue(organization, name=f"operator-{issued}", is_staff=True)
        self.stdout.write(f"Operator (staff) API key, for GET /stats and every organization's events: {operator_key}")
        _, key = ApiKey.issue(organization, name=f"demo-{issued}")
        self.stdout.write("Demo API key:")
        # An example that needs no secret answers the printed request as it is.
        runnable = [manifest for manifest in manifests if not manifest["secrets"]]
        if runnable:
            self.stdout.write("  " + curl_example(key, runnable[0]))
        self.stdout.write(key)

    def install_example(self, folder):
        try:
            manifest, files = load_plugin_source(folder)
            manifest = validate_manifest(manifest)
            if PluginVersion.objects.filter(plugin__slug=manifest["name"], version=manifest["version"]).exists():
                self.stdout.write(f"Plugin {manifest['name']} {manifest['version']}: already installed")
            else:
                install_version(manifest, files, activate=True, actor_id="cli")
                self.stdout.write(f"Plugin {manifest['name']} {manifest['version']}: installed and active")
        except ManifestError as exc:
            if shared_site_packages() is None and "SANDBOX_SHARED_PACKAGES" in str(exc):
                # The demo runs without the operator's shared set; only the
                # examples that import from it are left out, and say why.
                self.stdout.write(f"Plugin {folder.name}: not installed, it needs the shared packages ({exc}); "
                                  "build them with `make shared-packages` and set SANDBOX_SHARED_PACKAGES")
                return None
            raise CommandError(f"{folder}: {exc}") from None
        return manifest

    def create_admin(self):
        users = get_user_model().objects
        if users.filter(Q(is_superuser=True) | Q(username="admin")).exists():
            self.stdout.write("Admin user: not created (a superuser or a user named admin exists)")
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", email="", password=password)
        self.stdout.write(f"Admin user: admin / {password} (shown once; log in at /admin/)")


def curl_example(key, manifest):
    """A ready-to-run request for the plugin's first action, with its first example's params."""
    action_name, action = next(iter(manifest["actions"].items()))
    params = action["examples"][0]["params"] if action["examples"] else {}
    body = json.dumps({"pluginId": manifest["name"], "actionName": action_name, "params": params})
    return (
        f"curl -s -X POST http://localhost:{settings.PORT}/execute "
        f"-H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
