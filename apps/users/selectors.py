"""Reads of users, workspaces and memberships; every one checks the actor's access."""

import uuid

from django.db.models import QuerySet

from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.exceptions import MemberNotFound, WorkspaceNotFound
from apps.users.models import Membership


def workspace_memberships(*, actor: Actor) -> QuerySet[Membership]:
    """The actor's memberships; a workspace-bound credential sees only its workspace."""
    qs = Membership.objects.select_related("workspace").filter(user=actor.user)
    if actor.credential.workspace_id is not None:
        qs = qs.filter(workspace_id=actor.credential.workspace_id)
    return qs


def access_workspace(*, actor: Actor, workspace_id: uuid.UUID) -> Membership:
    """The actor's membership in `workspace_id`. Raises WorkspaceNotFound otherwise."""
    membership = workspace_memberships(actor=actor).filter(workspace_id=workspace_id).first()
    if membership is None:
        raise WorkspaceNotFound()
    return membership


def member_list(*, membership: Membership) -> QuerySet[Membership]:
    """Members of the workspace `membership` belongs to."""
    return Membership.objects.select_related("user").filter(workspace_id=membership.workspace_id)


def access_member(*, membership: Membership, user_id: uuid.UUID) -> Membership:
    """A member of the caller's workspace. Raises MemberNotFound."""
    found = member_list(membership=membership).filter(user_id=user_id).first()
    if found is None:
        raise MemberNotFound()
    return found


def workspace_owner_count(*, workspace_id: uuid.UUID) -> int:
    return Membership.objects.filter(workspace_id=workspace_id, role=Role.OWNER).count()
