import json

from django.core.management.base import BaseCommand, CommandError

from quotas.secrets import reencrypt_secrets


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored organization secret and callback signing secret with the first key of SECRETS_ENCRYPTION_KEY, "
        "so that older keys can be removed. Last line: JSON summary."
    )

    def handle(self, *args, **options):
        rotated, unreadable = reencrypt_secrets(actor_id="cli")
        for name in unreadable:
            self.stderr.write(f"cannot decrypt {name} with any configured key; left as it is")
        self.stdout.write(f"Re-encrypted {rotated} secret(s) with the first key")
        self.stdout.write(json.dumps({"reencrypted": rotated, "unreadable": unreadable}))
        if unreadable:
            raise CommandError(f"{len(unreadable)} secret(s) could not be decrypted; keep their key configured")
