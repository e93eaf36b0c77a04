import json

from django.core.management.base import BaseCommand, CommandError

from quotas.callback_signing import rotate_signing_secret, signing_secret
from quotas.models import Organization


class Command(BaseCommand):
    help = (
        "Print an organization's callback signing secret (made if it has none), or replace it with --rotate. "
        "Last line: JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("org", metavar="SLUG")
        parser.add_argument("--rotate", action="store_true", help="replace it with a new secret")

    def handle(self, *args, org, rotate=False, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization {org!r}")
        change = rotate_signing_secret if rotate else signing_secret
        value, created_at = change(organization, actor_id="cli")
        self.stdout.write(json.dumps({"organization": org, "secret": value, "createdAt": created_at.isoformat()}))
