from django.core.management.base import BaseCommand, CommandError

from quotas.models import ApiKey, Organization


class Command(BaseCommand):
    help = (
        "Issue an API key for an organization. The key is printed alone on the last line, "
        "once: only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("organization", metavar="ORG_SLUG")
        parser.add_argument("--name", default="default", help="A label telling the organization's keys apart.")
        parser.add_argument(
            "--staff", action="store_true",
            help="Issue an operator key: it calls the operator endpoints (GET /stats, every organization's events, "
            "public plugin uploads).",
        )

    def handle(self, *args, organization, name, staff, **options):
        owner = Organization.objects.filter(slug=organization).first()
        if owner is None:
            raise CommandError(f"no organization {organization!r}")
        record, key = ApiKey.issue(owner, name=name, is_staff=staff)
        kind = "operator (staff) API key" if staff else "API key"
        self.stdout.write(
            f"Issued {kind} {record.prefix} ({name}) for {owner.slug}. Store it now: it cannot be shown again."
        )
        self.stdout.write(key)
