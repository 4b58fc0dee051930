import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from apps.users.choices import Role
from apps.users.models import ApiKey, AuditEvent, Membership, User, Workspace
from tests.helpers import assert_error
from tests.users.factories import UserFactory, add_member, api_key_client, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db):
    return UserFactory(email="root@example.com", is_staff=True)


@pytest.fixture
def admin_api(operator, client_for):
    return client_for(operator)


def test_only_platform_admins_reach_user_administration(api, anon):
    assert_error(api.get("/api/v1/admin/users"), 403, "forbidden")
    assert_error(anon.get("/api/v1/admin/users"), 401, "unauthorized")
    response = api.post("/api/v1/admin/users", {"email": "x@example.com"}, format="json")
    assert_error(response, 403, "forbidden")
    assert not User.objects.filter(email="x@example.com").exists()


def test_list_and_search(admin_api, user, operator):
    UserFactory(email="carol@example.com", name="Carol")
    response = admin_api.get("/api/v1/admin/users")
    assert [u["email"] for u in response.json()["data"]] == [
        "alice@example.com",
        "carol@example.com",
        "root@example.com",
    ]
    # Not a name Faker gives the other users (a random "Caroline" once matched "caro").
    found = admin_api.get("/api/v1/admin/users?q=carol@exam").json()["data"]
    assert [u["email"] for u in found] == ["carol@example.com"]
    user.is_active = False
    user.save()
    disabled = admin_api.get("/api/v1/admin/users?is_active=false").json()["data"]
    assert [u["email"] for u in disabled] == ["alice@example.com"]


def test_create_user_gets_a_personal_workspace_and_a_verified_email(admin_api, operator):
    response = admin_api.post(
        "/api/v1/admin/users",
        {"email": "Dave@Example.com", "name": "Dave", "password": "a-long-enough-pass-9"},
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert "password" not in data
    dave = User.objects.get(pk=data["id"])
    assert dave.email == "Dave@example.com"
    assert dave.check_password("a-long-enough-pass-9")
    assert Membership.objects.get(user=dave).workspace.is_personal is True
    assert EmailAddress.objects.get(user=dave).verified is True
    assert AuditEvent.objects.get(action="user.create").actor_user == operator


def test_create_refuses_weak_password_and_taken_email(admin_api, user):
    weak = admin_api.post(
        "/api/v1/admin/users", {"email": "e@example.com", "password": "123"}, format="json"
    )
    assert_error(weak, 400, "validation_error")
    taken = admin_api.post("/api/v1/admin/users", {"email": "ALICE@example.com"}, format="json")
    assert_error(taken, 400, "validation_error")
    assert User.objects.count() == 2


def test_disable_stops_every_credential_and_enable_restores(admin_api, user, workspace, client_for):
    _, plaintext = make_api_key(user=user, workspace=workspace)
    session = client_for(user)
    key = api_key_client(plaintext)
    assert key.get("/api/v1/workspaces").status_code == 200
    response = admin_api.patch(
        f"/api/v1/admin/users/{user.id}", {"is_active": False}, format="json"
    )
    assert response.json()["data"]["is_active"] is False
    assert_error(key.get("/api/v1/workspaces"), 401, "unauthorized")
    assert_error(session.get("/api/v1/workspaces"), 401, "unauthorized")
    admin_api.patch(f"/api/v1/admin/users/{user.id}", {"is_active": True}, format="json")
    assert key.get("/api/v1/workspaces").status_code == 200
    assert list(
        AuditEvent.objects.filter(target_id=str(user.id))
        .order_by("created_at")
        .values_list("action", flat=True)
    ) == ["user.disable", "user.enable"]


def test_admin_cannot_disable_or_delete_themselves(admin_api, operator):
    response = admin_api.patch(
        f"/api/v1/admin/users/{operator.id}", {"is_active": False}, format="json"
    )
    assert_error(response, 409, "cannot_delete_self")
    assert_error(admin_api.delete(f"/api/v1/admin/users/{operator.id}"), 409, "cannot_delete_self")
    operator.refresh_from_db()
    assert operator.is_active is True


def test_delete_removes_personal_and_solo_workspaces_keeps_shared(admin_api, user, workspace):
    solo = Workspace.objects.create(name="Solo")
    add_member(workspace=solo, user=user, role=Role.OWNER)
    shared = Workspace.objects.create(name="Shared")
    bob = UserFactory()
    add_member(workspace=shared, user=bob, role=Role.OWNER)
    add_member(workspace=shared, user=user, role=Role.OWNER)
    make_api_key(user=user, workspace=workspace)
    assert admin_api.delete(f"/api/v1/admin/users/{user.id}").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert not Workspace.objects.filter(pk__in=[workspace.pk, solo.pk]).exists()
    assert list(Membership.objects.filter(workspace=shared).values_list("user", flat=True)) == [
        bob.id
    ]
    assert ApiKey.objects.count() == 0


def test_delete_refuses_the_last_owner_of_a_shared_workspace(admin_api, user):
    shared = Workspace.objects.create(name="Shared")
    add_member(workspace=shared, user=user, role=Role.OWNER)
    add_member(workspace=shared, role=Role.MEMBER)
    assert_error(admin_api.delete(f"/api/v1/admin/users/{user.id}"), 409, "last_owner")
    assert User.objects.filter(pk=user.pk).exists()
    assert Workspace.objects.filter(pk=shared.pk).exists()


def test_unknown_user_is_404(admin_api):
    missing = "00000000-0000-0000-0000-000000000000"
    assert_error(admin_api.get(f"/api/v1/admin/users/{missing}"), 404, "user_not_found")


def test_reset_mfa(admin_api, user):
    TOTP.activate(user, generate_totp_secret())
    assert admin_api.get(f"/api/v1/admin/users/{user.id}").json()["data"]["mfa_enabled"] is True
    response = admin_api.post(f"/api/v1/admin/users/{user.id}/mfa/reset")
    assert response.status_code == 200
    assert response.json()["data"] == {"removed": 1}
    assert not Authenticator.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action="mfa.reset", target_id=str(user.id)).count() == 1


def test_staff_api_key_with_area_scope_cannot_administer_users(operator):
    workspace = operator.memberships.get().workspace
    _, plaintext = make_api_key(user=operator, workspace=workspace, scopes=("workspaces:write",))
    assert_error(api_key_client(plaintext).get("/api/v1/admin/users"), 403, "forbidden")
    _, plaintext = make_api_key(user=operator, workspace=workspace, scopes=("read",))
    assert api_key_client(plaintext).get("/api/v1/admin/users").status_code == 200
