"""Give an administrator a new password (printed once) and make sure they can sign in."""

import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.management.commands.ensure_admin import mark_email_verified
from apps.users.models import User


class Command(BaseCommand):
    help = (
        "Reset the administrator's password: a new one is generated and printed once "
        "(or taken from --password). Default: the first superuser; --email picks one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", default="", help="The administrator's email.")
        parser.add_argument("--password", default="", help="Use this password instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        admins = User.objects.filter(is_superuser=True).order_by("date_joined")
        if options["email"]:
            admins = admins.filter(email__iexact=options["email"])
        user = admins.first()
        if user is None:
            raise CommandError(
                "No such administrator (run `make run` or `manage.py ensure_admin`)."
            )
        password = options["password"] or secrets.token_urlsafe(16)
        user.set_password(password)
        user.is_active = True
        user.save(update_fields=["password", "is_active"])
        mark_email_verified(user)
        self.stdout.write(self.style.SUCCESS(f"New password for {user.email}:"))
        self.stdout.write(f"  {password}" if not options["password"] else "  (the one given)")
