from datetime import timedelta

import pytest
from django.utils import timezone

from apps.users.choices import Role
from apps.users.models import ApiKey, AuditEvent, Workspace
from apps.users.selectors import api_key_hash
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.users.factories import UserFactory, add_member, api_key_client, make_api_key

pytestmark = pytest.mark.django_db


def test_create_shows_the_secret_once_and_stores_only_its_hash(api, user, workspace):
    response = api.post(
        "/api/v1/api-keys", {"name": "CI", "scopes": ["agents:read"]}, format="json"
    )
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    plaintext = data["key"]
    assert plaintext.startswith(data["prefix"] + "_")
    assert data["scopes"] == ["agents:read"]
    assert data["workspace_id"] == str(workspace.id)
    assert data["is_active"] is True
    key = ApiKey.objects.get(pk=data["id"])
    assert key.key_hash == api_key_hash(plaintext)
    assert plaintext not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    # Never again: not in the detail, not in the list.
    detail = api.get(f"/api/v1/api-keys/{key.id}")
    listing = api.get("/api/v1/api-keys")
    for later in (detail, listing):
        assert later.status_code == 200
        assert plaintext not in later.content.decode()
        assert "key" not in (later.json()["data"] if detail is later else later.json()["data"][0])
    event = AuditEvent.objects.get(action="api_key.create")
    assert (event.actor_user, event.workspace_id, event.target_id) == (
        user,
        workspace.id,
        str(key.id),
    )
    assert plaintext not in str(event.metadata)


def test_unknown_scope_is_refused(api):
    response = api.post("/api/v1/api-keys", {"name": "x", "scopes": ["admin"]}, format="json")
    assert_error(response, 400, "validation_error")
    assert ApiKey.objects.count() == 0


def test_key_authenticates_in_its_workspace(user, workspace):
    key, plaintext = make_api_key(user=user, workspace=workspace)
    client = api_key_client(plaintext)
    response = client.get("/api/v1/workspaces")
    assert response.status_code == 200
    assert [w["id"] for w in response.json()["data"]] == [str(workspace.id)]
    key.refresh_from_db()
    assert key.last_used_at is not None
    me = client.get("/api/v1/me").json()["data"]
    assert me["credential"] == {
        "kind": "api_key",
        "workspace_id": str(workspace.id),
        "scopes": ["read", "write"],
    }


def test_key_cannot_reach_another_workspace_of_its_user(user, workspace):
    team = Workspace.objects.create(name="Team")
    add_member(workspace=team, user=user, role=Role.OWNER)
    _, plaintext = make_api_key(user=user, workspace=workspace)
    client = api_key_client(plaintext)
    assert_error(client.get(f"/api/v1/workspaces/{team.id}"), 404, "workspace_not_found")
    response = client.get("/api/v1/workspaces", HTTP_X_WORKSPACE_ID=str(team.id))
    assert_error(response, 404, "workspace_not_found")


def test_read_only_key_cannot_write(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("read",))
    client = api_key_client(plaintext)
    assert client.get("/api/v1/workspaces").status_code == 200
    response = client.patch(f"/api/v1/workspaces/{workspace.id}", {"name": "New"}, format="json")
    assert_error(response, 403, "forbidden")
    workspace.refresh_from_db()
    assert workspace.name == "Alice's workspace"


def test_area_scope_covers_only_its_area(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("agents:write",))
    client = api_key_client(plaintext)
    assert_error(client.get("/api/v1/workspaces"), 403, "forbidden")
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("workspaces:write",))
    client = api_key_client(plaintext)
    response = client.patch(f"/api/v1/workspaces/{workspace.id}", {"name": "New"}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "New"


def test_scoped_key_cannot_mint_a_broader_key(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("workspaces:write",))
    client = api_key_client(plaintext)
    response = client.post("/api/v1/api-keys", {"name": "x", "scopes": ["write"]}, format="json")
    assert_error(response, 403, "forbidden")
    assert ApiKey.objects.count() == 1


def test_revoked_key_is_refused_on_the_next_request(api, user, workspace):
    key, plaintext = make_api_key(user=user, workspace=workspace)
    client = api_key_client(plaintext)
    assert client.get("/api/v1/workspaces").status_code == 200
    response = api.delete(f"/api/v1/api-keys/{key.id}")
    assert response.status_code == 200
    assert response.json()["data"]["is_active"] is False
    assert response.json()["data"]["revoked_at"] is not None
    assert_error(client.get("/api/v1/workspaces"), 401, "unauthorized")
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.id)).count() == 1


def test_expired_key_is_refused(user, workspace):
    _, plaintext = make_api_key(
        user=user, workspace=workspace, expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = api_key_client(plaintext).get("/api/v1/workspaces")
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", resource_metadata='
        '"http://testserver/.well-known/oauth-protected-resource/api/v1"'
    )


def test_expiry_in_the_past_is_refused_at_creation(api):
    past = (timezone.now() - timedelta(days=1)).isoformat()
    response = api.post("/api/v1/api-keys", {"name": "x", "expires_at": past}, format="json")
    assert_error(response, 400, "validation_error")
    assert ApiKey.objects.count() == 0


def test_unknown_key_is_refused(anon):
    anon.credentials(HTTP_AUTHORIZATION="Bearer ak_00000000_nope")
    assert_error(anon.get("/api/v1/workspaces"), 401, "unauthorized")


def test_disabled_user_key_is_refused(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace)
    user.is_active = False
    user.save()
    assert_error(api_key_client(plaintext).get("/api/v1/workspaces"), 401, "unauthorized")


def test_removed_member_key_is_refused(user):
    owner = UserFactory()
    team = Workspace.objects.create(name="Team")
    add_member(workspace=team, user=owner, role=Role.OWNER)
    membership = add_member(workspace=team, user=user, role=Role.MEMBER)
    _, plaintext = make_api_key(user=user, workspace=team)
    client = api_key_client(plaintext)
    assert client.get("/api/v1/workspaces").status_code == 200
    membership.delete()
    assert_error(client.get("/api/v1/workspaces"), 401, "unauthorized")


def test_members_see_their_keys_admins_see_all(user, workspace, client_for):
    bob = UserFactory(email="bob@example.com")
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    mine, _ = make_api_key(user=user, workspace=workspace, name="alice's")
    bobs, _ = make_api_key(user=bob, workspace=workspace, name="bob's")
    bob_client = client_for(bob)
    bob_client.credentials(HTTP_X_WORKSPACE_ID=str(workspace.id))
    listed = bob_client.get("/api/v1/api-keys").json()["data"]
    assert [k["id"] for k in listed] == [str(bobs.id)]
    assert_error(bob_client.delete(f"/api/v1/api-keys/{mine.id}"), 404, "api_key_not_found")
    alice = client_for(user)
    alice.credentials(HTTP_X_WORKSPACE_ID=str(workspace.id))
    assert {k["id"] for k in alice.get("/api/v1/api-keys").json()["data"]} == {
        str(mine.id),
        str(bobs.id),
    }
    assert alice.delete(f"/api/v1/api-keys/{bobs.id}").status_code == 200


def test_outsiders_get_404_on_keys(user, workspace, outsider):
    key, _ = make_api_key(user=user, workspace=workspace)
    for method in ("get", "delete"):
        assert_outsiders_get_404(
            method=method, url=f"/api/v1/api-keys/{key.id}", outsider=outsider, obj=key
        )


def test_rate_limit_is_counted_per_key(user, workspace, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api_key": "2/min"}
    _, first = make_api_key(user=user, workspace=workspace)
    _, second = make_api_key(user=user, workspace=workspace)
    one = api_key_client(first)
    assert one.get("/api/v1/workspaces").status_code == 200
    assert one.get("/api/v1/workspaces").status_code == 200
    assert_error(one.get("/api/v1/workspaces"), 429, "rate_limited")
    assert api_key_client(second).get("/api/v1/workspaces").status_code == 200


def test_viewer_cannot_create_keys(client_for, workspace):
    viewer = UserFactory()
    add_member(workspace=workspace, user=viewer, role=Role.VIEWER)
    response = client_for(viewer).post(
        "/api/v1/api-keys", {"name": "x"}, format="json", HTTP_X_WORKSPACE_ID=str(workspace.id)
    )
    assert_error(response, 403, "forbidden")
    assert ApiKey.objects.count() == 0


def test_read_only_key_cannot_revoke_oauth_consents(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("read",))
    client = api_key_client(plaintext)
    assert client.get("/api/v1/me/authorizations").status_code == 200
    assert_error(client.delete("/api/v1/me/authorizations/1"), 403, "forbidden")
