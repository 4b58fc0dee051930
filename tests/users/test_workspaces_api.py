import uuid

import pytest

from apps.users.choices import Role
from apps.users.models import Membership, Workspace
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_every_user_gets_a_personal_workspace_they_own(user):
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.is_personal is True


def test_list_shows_only_my_workspaces_with_roles(api, user, workspace, django_assert_num_queries):
    other = UserFactory()
    team = Workspace.objects.create(name="Team")
    Membership.objects.create(workspace=team, user=user, role=Role.VIEWER)
    Membership.objects.create(workspace=team, user=other, role=Role.OWNER)
    with django_assert_num_queries(4):  # session, user, actor membership, one page
        response = api.get("/api/v1/workspaces")
    body = response.json()
    assert {(w["name"], w["role"]) for w in body["data"]} == {
        (workspace.name, "owner"),
        ("Team", "viewer"),
    }
    assert body["meta"]["has_more"] is False


def test_create_makes_the_caller_owner(api, user):
    response = api.post("/api/v1/workspaces", {"name": "  Research  "}, format="json")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["name"] == "Research"
    assert data["role"] == "owner"
    assert Membership.objects.get(workspace_id=data["id"], user=user).role == Role.OWNER


def test_rename_needs_admin(api, user):
    team = Workspace.objects.create(name="Team")
    Membership.objects.create(workspace=team, user=user, role=Role.MEMBER)
    response = api.patch(f"/api/v1/workspaces/{team.id}", {"name": "Mine"}, format="json")
    assert_error(response, 403, "forbidden")
    team.refresh_from_db()
    assert team.name == "Team"


def test_owner_adds_member_and_changes_role(api, workspace):
    bob = UserFactory(email="bob@example.com")
    url = f"/api/v1/workspaces/{workspace.id}/members"
    response = api.post(url, {"email": "BOB@example.com", "role": "member"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["data"]["email"] == "bob@example.com"
    response = api.patch(f"{url}/{bob.id}", {"role": "admin"}, format="json")
    assert response.json()["data"]["role"] == "admin"
    listed = api.get(url).json()["data"]
    assert {(m["email"], m["role"]) for m in listed} == {
        ("alice@example.com", "owner"),
        ("bob@example.com", "admin"),
    }


def test_adding_unknown_email_names_the_field(api, workspace):
    response = api.post(
        f"/api/v1/workspaces/{workspace.id}/members", {"email": "nobody@example.com"}, format="json"
    )
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "email"


def test_adding_twice_is_conflict(api, workspace):
    bob = UserFactory()
    add_member(workspace=workspace, user=bob)
    response = api.post(
        f"/api/v1/workspaces/{workspace.id}/members", {"email": bob.email}, format="json"
    )
    assert_error(response, 409, "already_member")


def test_last_owner_cannot_be_removed_or_demoted(api, user, workspace):
    url = f"/api/v1/workspaces/{workspace.id}/members/{user.id}"
    assert_error(api.delete(url), 409, "last_owner")
    assert_error(api.patch(url, {"role": "member"}, format="json"), 409, "last_owner")
    assert Membership.objects.get(workspace=workspace, user=user).role == Role.OWNER


def test_admin_cannot_remove_an_owner_or_grant_owner(client_for, workspace):
    admin = add_member(workspace=workspace, role=Role.ADMIN).user
    bob = add_member(workspace=workspace, role=Role.MEMBER).user
    api = client_for(admin)
    owner_id = workspace.memberships.get(role=Role.OWNER).user_id
    base = f"/api/v1/workspaces/{workspace.id}/members"
    assert_error(api.delete(f"{base}/{owner_id}"), 403, "forbidden")
    assert_error(api.patch(f"{base}/{bob.id}", {"role": "owner"}, format="json"), 403, "forbidden")
    assert api.patch(f"{base}/{bob.id}", {"role": "viewer"}, format="json").status_code == 200


def test_a_member_may_leave(client_for, workspace):
    bob = add_member(workspace=workspace, role=Role.MEMBER).user
    response = client_for(bob).delete(f"/api/v1/workspaces/{workspace.id}/members/{bob.id}")
    assert response.status_code == 204
    assert not Membership.objects.filter(workspace=workspace, user=bob).exists()


def test_removed_member_loses_access_at_once(client_for, workspace):
    bob = add_member(workspace=workspace, role=Role.MEMBER).user
    api = client_for(bob)
    assert api.get(f"/api/v1/workspaces/{workspace.id}").status_code == 200
    Membership.objects.filter(workspace=workspace, user=bob).delete()
    assert_error(api.get(f"/api/v1/workspaces/{workspace.id}"), 404, "workspace_not_found")


def test_viewer_cannot_add_members(client_for, workspace):
    viewer = add_member(workspace=workspace, role=Role.VIEWER).user
    before = Membership.objects.count()
    response = client_for(viewer).post(
        f"/api/v1/workspaces/{workspace.id}/members", {"email": "alice@example.com"}, format="json"
    )
    assert_error(response, 403, "forbidden")
    assert Membership.objects.count() == before


@pytest.mark.parametrize(
    ("method", "suffix", "data"),
    [
        ("get", "", None),
        ("patch", "", {"name": "Hijacked"}),
        ("get", "/members", None),
        ("post", "/members", {"email": "mallory@example.com", "role": "owner"}),
        ("patch", "/members/{owner}", {"role": "viewer"}),
        ("delete", "/members/{owner}", None),
    ],
)
def test_other_workspace_member_gets_404(outsider, user, workspace, method, suffix, data):
    url = f"/api/v1/workspaces/{workspace.id}" + suffix.format(owner=user.id)
    assert_outsiders_get_404(
        method=method,
        url=url,
        outsider=outsider,
        data=data,
        snapshot=lambda: (
            Workspace.objects.get(pk=workspace.pk).name,
            sorted(Membership.objects.filter(workspace=workspace).values_list("user_id", "role")),
        ),
    )


def test_unknown_workspace_id_is_404(api):
    assert_error(api.get(f"/api/v1/workspaces/{uuid.uuid4()}"), 404, "workspace_not_found")


def test_workspace_header_selects_the_acting_workspace(api, user):
    from apps.users.actors import SESSION_CREDENTIAL, actor_resolve

    team = Workspace.objects.create(name="Team")
    Membership.objects.create(workspace=team, user=user, role=Role.ADMIN)
    actor = actor_resolve(
        user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=str(team.id)
    )
    assert actor.workspace == team and actor.role == Role.ADMIN
    default = actor_resolve(user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=None)
    assert default.workspace.is_personal
