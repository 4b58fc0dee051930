import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from apps.users.choices import Role
from apps.users.models import AuditEvent, Workspace, WorkspaceSecurity
from apps.users.services import audit_record
from tests.helpers import assert_error
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def test_turning_on_admin_mfa_needs_mfa_yourself(api, workspace, user):
    url = f"/api/v1/workspaces/{workspace.id}/security"
    assert api.get(url).json()["data"] == {"require_admin_mfa": False}
    response = api.patch(url, {"require_admin_mfa": True}, format="json")
    assert_error(response, 403, "mfa_required")
    assert not WorkspaceSecurity.objects.exists()
    TOTP.activate(user, generate_totp_secret())
    response = api.patch(url, {"require_admin_mfa": True}, format="json")
    assert response.json()["data"] == {"require_admin_mfa": True}
    assert AuditEvent.objects.filter(action="workspace.mfa_policy").count() == 1


def test_admins_without_mfa_are_stopped_members_are_not(client_for, user):
    team = Workspace.objects.create(name="Team")
    add_member(workspace=team, user=user, role=Role.OWNER)
    WorkspaceSecurity.objects.create(workspace=team, require_admin_mfa=True)
    admin = UserFactory(email="adm@example.com")
    member = UserFactory(email="mem@example.com")
    add_member(workspace=team, user=admin, role=Role.ADMIN)
    add_member(workspace=team, user=member, role=Role.MEMBER)
    admin_api = client_for(admin)
    response = admin_api.get(f"/api/v1/workspaces/{team.id}", HTTP_X_WORKSPACE_ID=str(team.id))
    assert_error(response, 403, "mfa_required")
    me = admin_api.get("/api/v1/me").json()["data"]
    assert me["mfa_setup_required"] is True
    assert {w["name"]: w["mfa_required"] for w in me["workspaces"]}["Team"] is True
    member_api = client_for(member)
    ok = member_api.get(f"/api/v1/workspaces/{team.id}", HTTP_X_WORKSPACE_ID=str(team.id))
    assert ok.status_code == 200
    TOTP.activate(admin, generate_totp_secret())
    ok = admin_api.get(f"/api/v1/workspaces/{team.id}", HTTP_X_WORKSPACE_ID=str(team.id))
    assert ok.status_code == 200


def test_members_cannot_change_the_policy(client_for, workspace):
    member = UserFactory()
    add_member(workspace=workspace, user=member, role=Role.MEMBER)
    api = client_for(member)
    response = api.patch(
        f"/api/v1/workspaces/{workspace.id}/security",
        {"require_admin_mfa": False},
        format="json",
        HTTP_X_WORKSPACE_ID=str(workspace.id),
    )
    assert_error(response, 403, "forbidden")


def test_audit_trail_is_for_workspace_admins(api, workspace, user, client_for, outsider):
    bob = UserFactory(email="bob@example.com")
    api.post(
        f"/api/v1/workspaces/{workspace.id}/members",
        {"email": "bob@example.com", "role": "member"},
        format="json",
    )
    api.patch(
        f"/api/v1/workspaces/{workspace.id}/members/{bob.id}", {"role": "admin"}, format="json"
    )
    events = api.get("/api/v1/audit-events").json()["data"]
    assert [(e["action"], e["target_id"], e["actor_email"]) for e in events] == [
        ("member.role_change", str(bob.id), "alice@example.com"),
        ("member.add", str(bob.id), "alice@example.com"),
    ]
    assert events[0]["metadata"] == {"from": "member", "to": "admin"}
    filtered = api.get("/api/v1/audit-events?action=member.add").json()["data"]
    assert [e["action"] for e in filtered] == ["member.add"]
    # Another workspace's admin sees nothing of it.
    assert outsider.get("/api/v1/audit-events").json()["data"] == []
    # A plain member is refused.
    viewer = UserFactory()
    add_member(workspace=workspace, user=viewer, role=Role.MEMBER)
    response = client_for(viewer).get("/api/v1/audit-events", HTTP_X_WORKSPACE_ID=str(workspace.id))
    assert_error(response, 403, "forbidden")


def test_me_for_a_session(api, user, workspace):
    data = api.get("/api/v1/me").json()["data"]
    assert data == {
        "id": str(user.id),
        "email": "alice@example.com",
        "name": "Alice",
        "is_staff": False,
        "email_verified": False,
        "mfa_enabled": False,
        "mfa_setup_required": False,
        "workspaces": [
            {
                "id": str(workspace.id),
                "name": "Alice's workspace",
                "is_personal": True,
                "role": "owner",
                "mfa_required": False,
            }
        ],
        "credential": {"kind": "session", "workspace_id": None, "scopes": None},
    }


def test_me_needs_credentials(anon):
    assert_error(anon.get("/api/v1/me"), 401, "unauthorized")


def test_audit_trail_filters_by_who_acted(api, workspace, user):
    bob = UserFactory(email="bob@example.com")
    audit_record(action="api_key.create", actor_user=user, workspace_id=workspace.id)
    audit_record(action="api_key.create", actor_user=bob, workspace_id=workspace.id)
    events = api.get("/api/v1/audit-events?user=BOB@").json()["data"]
    assert [e["actor_email"] for e in events] == ["bob@example.com"]
    assert api.get("/api/v1/audit-events?user=nobody").json()["data"] == []
