import json

from django.core.management.base import BaseCommand, CommandError

from quotas.actions import reset_daily_usage
from quotas.models import Organization


class Command(BaseCommand):
    help = "Reset today's daily usage (UTC) of one organization, or of all. Last line: JSON summary."

    def add_arguments(self, parser):
        parser.add_argument("--org", metavar="SLUG", help="only this organization")

    def handle(self, *args, org=None, **options):
        organizations = Organization.objects.all()
        if org:
            organizations = organizations.filter(slug=org)
            if not organizations.exists():
                raise CommandError(f"no organization {org!r}")
        organizations = list(organizations)
        had_usage = reset_daily_usage(organizations, actor_id="cli")
        for organization in organizations:
            self.stdout.write(f"reset {organization.slug}")
        self.stdout.write(json.dumps({"organizations": len(organizations), "hadUsage": had_usage}))
