"""allauth adapters: registration closed by the system setting; every new account gets its
personal workspace, whether it signed up with a password or an upstream provider."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from apps.core.selectors import system_settings_get
from apps.users.services import personal_workspace_ensure


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(system_settings_get().allow_registration)

    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        if not commit:
            return super().save_user(request, user, form, commit=False)
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=True)
            personal_workspace_ensure(user=user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        return bool(system_settings_get().allow_registration)

    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        with transaction.atomic():
            user = super().save_user(request, sociallogin, form)
            personal_workspace_ensure(user=user)
        return user
