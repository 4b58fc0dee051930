import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models, transaction
from django.utils import timezone

from apps.core.models import BaseModel
from apps.users.choices import Role


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        """A user and their personal workspace (they own it): every user has one. Here,
        not in services, because Django's own commands (createsuperuser) create users
        through the manager; `users.services.user_create` validates, then calls this."""
        email = self.normalize_email(email).strip()
        name = extra.pop("name", "")
        with transaction.atomic():
            user = self.model(email=email, name=name, **extra)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save(using=self._db)
            workspace = Workspace.objects.create(
                name=f"{name or email.split('@')[0]}'s workspace",
                is_personal=True,
                created_by=user,
            )
            Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person (or service account) who signs in; identified by email."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(  # type: ignore[misc]
        default=True, help_text="Disabled users are refused with every credential at once."
    )
    is_staff = models.BooleanField(default=False, help_text="Platform administrator.")
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []  # type: ignore[misc]

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email


class Workspace(BaseModel):
    """The tenant: every resource belongs to exactly one workspace."""

    name = models.CharField(max_length=100)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    members = models.ManyToManyField(User, through="Membership", related_name="workspaces")

    def __str__(self) -> str:
        return self.name


class Membership(BaseModel):
    """A user's role in a workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class WorkspaceSecurity(BaseModel):
    """Security policy of one workspace (absent row: the defaults)."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="security")
    require_admin_mfa = models.BooleanField(
        default=False,
        help_text="Admins and owners must have MFA enabled to act in this workspace.",
    )

    class Meta:
        verbose_name = "workspace security policy"
        verbose_name_plural = "workspace security policies"

    def __str__(self) -> str:
        return f"Security of {self.workspace}"


class ApiKey(BaseModel):
    """A secret a program sends as `Authorization: Bearer <key>`; acts as its creator in
    one workspace, limited by its scopes. Only a SHA-256 hash of the secret is stored."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, help_text="Visible start of the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, *, now: Any = None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class AuditEvent(BaseModel):
    """One security-relevant event (sign-in, MFA change, key or app granted/revoked, ...)."""

    action = models.CharField(max_length=64, db_index=True)
    actor_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    # A plain id, not a foreign key: the trail outlives a deleted workspace.
    workspace_id = models.UUIDField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_email or '-'}"


class OAuthClient(BaseModel):
    """The workspace an OAuth2 application was registered in (through the API)."""

    application = models.OneToOneField(
        "oauth2_provider.Application", on_delete=models.CASCADE, related_name="platform_client"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="oauth_clients")

    class Meta:
        verbose_name = "OAuth client"
        verbose_name_plural = "OAuth clients"

    def __str__(self) -> str:
        return f"{self.application} in {self.workspace}"


class OAuthWorkspaceBinding(BaseModel):
    """The workspace an authorization code, access token or refresh token acts in.

    Chosen by the user on the consent page; carried over from code to tokens and from a
    refresh token to the tokens it is exchanged for.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    grant = models.OneToOneField(
        "oauth2_provider.Grant",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="workspace_binding",
    )
    access_token = models.OneToOneField(
        "oauth2_provider.AccessToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="workspace_binding",
    )
    refresh_token = models.OneToOneField(
        "oauth2_provider.RefreshToken",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="workspace_binding",
    )

    class Meta:
        verbose_name = "OAuth workspace binding"
        verbose_name_plural = "OAuth workspace bindings"

    def __str__(self) -> str:
        return f"binding to {self.workspace_id}"


class OAuthCodeUse(BaseModel):
    """An authorization code that was exchanged, kept by its SHA-256 with the access
    token it gave: presented again, the code revokes that token and its refresh family
    (RFC 6749 §4.1.2). Deleted with its token."""

    code_hash = models.CharField(max_length=64, db_index=True)
    application = models.ForeignKey(
        "oauth2_provider.Application", on_delete=models.CASCADE, related_name="+"
    )
    access_token = models.ForeignKey(
        "oauth2_provider.AccessToken", on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        verbose_name = "OAuth code use"
        verbose_name_plural = "OAuth code uses"

    def __str__(self) -> str:
        return f"code {self.code_hash[:8]}…"


class DynamicClientRegistration(BaseModel):
    """An OAuth2 application that registered itself anonymously (RFC 7591 dynamic client
    registration): who asked (address, user agent), what it asked for, and when a token
    was first issued to it. Never used within the expiry, it is deleted with its
    application (users.purge_unused_dynamic_clients)."""

    application = models.OneToOneField(
        "oauth2_provider.Application",
        on_delete=models.CASCADE,
        related_name="dynamic_registration",
    )
    client_name = models.CharField(max_length=100, blank=True)
    redirect_uris = models.JSONField(default=list)
    scope = models.CharField(
        max_length=1000, blank=True, help_text="Scopes it may ask for; empty: any scope."
    )
    software_id = models.CharField(max_length=100, blank=True)
    software_version = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    first_used_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_name or 'unnamed client'} ({self.application_id})"
