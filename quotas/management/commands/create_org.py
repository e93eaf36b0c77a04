from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from quotas.models import Organization, Tier


class Command(BaseCommand):
    help = "Create an organization on an existing tier. Prints its slug on the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--tier", required=True, help="Name of an existing tier (free, pro, enterprise, ...).")
        parser.add_argument("--name", help="Display name; defaults to the slug.")
        parser.add_argument("--owner-email", default="", help="Where owner notifications go.")

    def handle(self, *args, slug, tier, name, owner_email, **options):
        tier_record = Tier.objects.filter(name=tier).first()
        if tier_record is None:
            known = ", ".join(Tier.objects.values_list("name", flat=True))
            raise CommandError(f"unknown tier {tier!r} (existing tiers: {known})")
        if Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"organization {slug!r} already exists")
        organization = Organization(slug=slug, name=name or slug, tier=tier_record, owner_email=owner_email)
        try:
            organization.full_clean()
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
            raise CommandError(problems) from None
        organization.save()
        self.stdout.write(f"Created organization {organization.slug} ({organization.name}) on tier {tier_record.name}")
        self.stdout.write(organization.slug)
