"""Create the first administrator if there is none (used by `make run`)."""

from typing import Any

from django.core.management.base import BaseCommand

from apps.users.services import ensure_admin


class Command(BaseCommand):
    help = (
        "Create an administrator unless one exists. Credentials come from ADMIN_EMAIL and "
        "ADMIN_PASSWORD, or are generated and printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        account = ensure_admin()
        if not account.created:
            self.stdout.write(f"An administrator already exists: {account.email}")
            return
        self.stdout.write(self.style.SUCCESS("Created the administrator account:"))
        self.stdout.write(f"  email:    {account.email}")
        if account.password is None:
            self.stdout.write("  password: (from ADMIN_PASSWORD)")
        else:
            self.stdout.write(f"  password: {account.password}   (shown once)")
