"""Writes of users, workspaces and memberships."""

from typing import Any

from django.contrib.auth.base_user import BaseUserManager
from django.db import transaction

from apps.core.exceptions import PermissionDenied, ValidationFailed
from apps.users.choices import Role
from apps.users.exceptions import AlreadyMember, LastOwner
from apps.users.models import Membership, User, Workspace
from apps.users.selectors import workspace_owner_count


def require_membership_role(*, membership: Membership, role: Role) -> None:
    """Raises PermissionDenied unless `membership` has at least `role`."""
    if not Role(membership.role).at_least(role):
        raise PermissionDenied(f"This needs the {role.label.lower()} role or higher.")


def user_create(*, email: str, password: str | None = None, name: str = "", **extra: Any) -> User:
    """Create a user and their personal workspace (they own it)."""
    email = BaseUserManager.normalize_email(email).strip()
    if not email:
        raise ValidationFailed("An email address is required.", field="email")
    with transaction.atomic():
        user = User(email=email, name=name, **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        workspace_create(
            user=user, name=f"{name or email.split('@')[0]}'s workspace", is_personal=True
        )
    return user


def workspace_create(*, user: User, name: str, is_personal: bool = False) -> Workspace:
    """Create a workspace owned by `user`."""
    with transaction.atomic():
        workspace = Workspace.objects.create(name=name, is_personal=is_personal, created_by=user)
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    return workspace


def workspace_rename(*, membership: Membership, name: str) -> Workspace:
    """Rename the membership's workspace. Needs admin."""
    require_membership_role(membership=membership, role=Role.ADMIN)
    workspace = membership.workspace
    workspace.name = name
    workspace.save(update_fields=["name", "updated_at"])
    return workspace


def member_add(*, membership: Membership, email: str, role: Role) -> Membership:
    """Add an existing user by email. Needs admin; granting owner needs owner.

    Raises ValidationFailed for an unknown email, AlreadyMember for a member.
    """
    require_membership_role(membership=membership, role=Role.ADMIN)
    if role == Role.OWNER:
        require_membership_role(membership=membership, role=Role.OWNER)
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        raise ValidationFailed("No active user has this email address.", field="email")
    with transaction.atomic():
        if Membership.objects.filter(workspace_id=membership.workspace_id, user=user).exists():
            raise AlreadyMember()
        return Membership.objects.create(workspace_id=membership.workspace_id, user=user, role=role)


def member_change_role(*, membership: Membership, target: Membership, role: Role) -> Membership:
    """Change `target`'s role. Needs admin; touching an owner or granting owner needs
    owner; the last owner cannot be demoted (LastOwner)."""
    require_membership_role(membership=membership, role=Role.ADMIN)
    if role == Role.OWNER or target.role == Role.OWNER:
        require_membership_role(membership=membership, role=Role.OWNER)
    with transaction.atomic():
        _lock_workspace(target.workspace_id)
        if (
            target.role == Role.OWNER
            and role != Role.OWNER
            and workspace_owner_count(workspace_id=target.workspace_id) <= 1
        ):
            raise LastOwner()
        target.role = role
        target.save(update_fields=["role", "updated_at"])
    return target


def member_remove(*, membership: Membership, target: Membership) -> None:
    """Remove `target` from the workspace. Anyone may leave; removing others needs admin
    (owner to remove an owner); the last owner cannot go (LastOwner)."""
    if target.pk != membership.pk:
        require_membership_role(membership=membership, role=Role.ADMIN)
        if target.role == Role.OWNER:
            require_membership_role(membership=membership, role=Role.OWNER)
    with transaction.atomic():
        _lock_workspace(target.workspace_id)
        if (
            target.role == Role.OWNER
            and workspace_owner_count(workspace_id=target.workspace_id) <= 1
        ):
            raise LastOwner()
        target.delete()


def _lock_workspace(workspace_id: Any) -> None:
    """Serialize membership changes of one workspace (a row lock on PostgreSQL; SQLite
    transactions are already serial)."""
    Workspace.objects.select_for_update().filter(pk=workspace_id).first()
