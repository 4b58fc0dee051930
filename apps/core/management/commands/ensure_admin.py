"""Create the first administrator if there is none (used by `make run`)."""

import os
import secrets
from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.users.models import User
from apps.users.services import user_create


@dataclass(frozen=True)
class AdminAccount:
    email: str
    password: str | None  # None: not known here (an existing account, or ADMIN_PASSWORD)
    created: bool


def mark_email_verified(user: User) -> None:
    """The administrator signs in at once: their address counts as verified (allauth's
    mandatory verification would otherwise ask for a code first)."""
    EmailAddress.objects.update_or_create(
        user=user,
        email__iexact=user.email,
        defaults={"email": user.email, "verified": True, "primary": True},
    )


def ensure_admin() -> AdminAccount:
    """The first superuser: created from ADMIN_EMAIL / ADMIN_PASSWORD (or a generated
    password) unless one exists. Idempotent."""
    existing = User.objects.filter(is_superuser=True).order_by("date_joined").first()
    if existing is not None:
        return AdminAccount(email=existing.email, password=None, created=False)
    email = os.environ.get("ADMIN_EMAIL", "admin@example.com")
    given = os.environ.get("ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(16)
    with transaction.atomic():
        user = user_create(email=email, password=password, is_staff=True, is_superuser=True)
        mark_email_verified(user)
    return AdminAccount(email=email, password=None if given else password, created=True)


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
