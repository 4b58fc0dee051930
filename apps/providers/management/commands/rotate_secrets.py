"""Re-encrypt every stored secret with the newest key of SECRET_ENCRYPTION_KEYS.

Rotation: put a new Fernet key first in SECRET_ENCRYPTION_KEYS (keep the old ones after
it), run this command, then drop the old keys. Idempotent. Covers every
EncryptedTextField of every installed app, not only provider keys.
"""

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.core.crypto import EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest SECRET_ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in apps.get_models():
            names = [
                f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)
            ]
            if not names:
                continue
            done = 0
            manager = model._default_manager
            with transaction.atomic():
                # Reading decrypts with any configured key; writing encrypts with the newest.
                for pk, *values in manager.values_list("pk", *names).iterator():
                    manager.filter(pk=pk).update(**dict(zip(names, values, strict=True)))
                    done += 1
            total += done
            self.stdout.write(f"{model._meta.label}: {done} row(s)")
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} row(s)."))
