"""Create the first administrator if there is none (used by `make run`)."""

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand

from apps.users.models import User
from apps.users.services import user_create


class Command(BaseCommand):
    help = (
        "Create an administrator unless one exists. Credentials come from ADMIN_EMAIL and "
        "ADMIN_PASSWORD, or are generated and printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An administrator already exists.")
            return
        email = os.environ.get("ADMIN_EMAIL", "admin@example.com")
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(16)
        user_create(email=email, password=password, is_staff=True, is_superuser=True)
        self.stdout.write(self.style.SUCCESS("Created the administrator account:"))
        self.stdout.write(f"  email:    {email}")
        if "ADMIN_PASSWORD" in os.environ:
            self.stdout.write("  password: (from ADMIN_PASSWORD)")
        else:
            self.stdout.write(f"  password: {password}   (shown once; change it in /admin/)")
