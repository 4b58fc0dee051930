"""Template context of every console page: the actor and the workspaces of the switcher."""

from typing import Any

from django.http import HttpRequest

from apps.users.selectors import workspace_memberships


def console(request: HttpRequest) -> dict[str, Any]:
    actor = getattr(request, "actor", None)
    if actor is None:
        return {}
    memberships = workspace_memberships(actor=actor).order_by(
        "-workspace__is_personal", "workspace__name"
    )
    return {"actor": actor, "memberships": memberships}
