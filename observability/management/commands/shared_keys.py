import json

from django.core.management.base import BaseCommand

from observability.shared_keys import against_the_record, record_fingerprints


class Command(BaseCommand):
    help = (
        "Compare this node's SECRET_KEY and SECRETS_ENCRYPTION_KEY with those the deployment's nodes recorded "
        "(by fingerprint); --record makes this node's the record, after every node was given new ones."
    )

    def add_arguments(self, parser):
        parser.add_argument("--record", action="store_true", help="replace the recorded fingerprints with this node's")

    def handle(self, *args, record=False, **options):
        if record:
            record_fingerprints(replace=True)
        summary = {}
        for name, fingerprint, row in against_the_record():
            if row is None:
                summary[name], verdict = "unrecorded", "nothing recorded"
            elif row.fingerprint == fingerprint:
                summary[name], verdict = "same", f"same as recorded by {row.recorded_by}"
            else:
                summary[name], verdict = "differs", f"DIFFERS from the one recorded by {row.recorded_by}"
            self.stdout.write(f"{name}: {fingerprint[:12]}… {verdict}")
        self.stdout.write(json.dumps(summary))
