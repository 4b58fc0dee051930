"""Workspace security pages: the MFA policy (admins only change it, MFA needed to turn it
on, enforced on console pages as on the API) and the audit trail (admins only,
filtered, paginated, another workspace's events never shown)."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.urls import reverse

from apps.users.choices import Role
from apps.users.models import AuditEvent, WorkspaceSecurity
from apps.users.services import audit_record
from tests.users.factories import UserFactory, add_member, make_workspace

pytestmark = pytest.mark.django_db


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_owner_without_mfa_cannot_require_mfa(owner_client, workspace):
    response = owner_client.post(reverse("console:security"), {"require_admin_mfa": "on"})
    assert response.status_code == 400
    assert b"two-factor authentication" in response.content
    assert not WorkspaceSecurity.objects.filter(workspace=workspace).exists()
    assert not AuditEvent.objects.filter(action="workspace.mfa_policy").exists()


def test_owner_with_mfa_requires_mfa_and_it_is_audited(owner_client, user, workspace):
    TOTP.activate(user, generate_totp_secret())
    response = owner_client.post(reverse("console:security"), {"require_admin_mfa": "on"})
    assert response.status_code == 302
    assert WorkspaceSecurity.objects.get(workspace=workspace).require_admin_mfa is True
    event = AuditEvent.objects.get(action="workspace.mfa_policy")
    assert event.metadata == {"require_admin_mfa": True}
    assert event.workspace_id == workspace.id
    page = owner_client.get(reverse("console:security"))
    assert b'data-policy="required"' in page.content
    # Turning it off again.
    owner_client.post(reverse("console:security"), {})
    assert WorkspaceSecurity.objects.get(workspace=workspace).require_admin_mfa is False


def test_member_sees_the_policy_but_cannot_change_it(user, workspace):
    bob = UserFactory(email="bob@example.com")
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    client = signed_in(bob)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    page = client.get(reverse("console:security"))
    assert page.status_code == 200
    assert b"Only admins and owners change the policy" in page.content
    response = client.post(reverse("console:security"), {"require_admin_mfa": "on"})
    assert response.status_code == 403
    assert not WorkspaceSecurity.objects.filter(workspace=workspace).exists()


def test_admin_without_mfa_is_stopped_on_console_pages_when_the_policy_requires_it(user, workspace):
    WorkspaceSecurity.objects.create(workspace=workspace, require_admin_mfa=True)
    carol = UserFactory(email="carol@example.com")
    add_member(workspace=workspace, user=carol, role=Role.ADMIN)
    dave = UserFactory(email="dave@example.com")
    add_member(workspace=workspace, user=dave, role=Role.MEMBER)
    admin = signed_in(carol)
    admin.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    response = admin.get(reverse("console:agents"))
    assert response.status_code == 403
    assert b"requires its admins to use two-factor authentication" in response.content
    assert reverse("mfa_index").encode() in response.content
    # A member is not concerned; an admin with MFA passes.
    member = signed_in(dave)
    member.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    assert member.get(reverse("console:agents")).status_code == 200
    TOTP.activate(carol, generate_totp_secret())
    assert admin.get(reverse("console:agents")).status_code == 200


def test_audit_trail_is_for_admins(user, workspace):
    bob = UserFactory(email="bob@example.com")
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    client = signed_in(bob)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    response = client.get(reverse("console:audit"))
    assert response.status_code == 403
    assert b"admin role or higher" in response.content
    assert b"Audit trail" not in client.get(reverse("console:security")).content


def test_audit_trail_lists_filters_and_paginates_only_this_workspace(
    owner_client, user, workspace, django_assert_max_num_queries
):
    other = make_workspace(owner=UserFactory(email="eve@example.com"), name="Elsewhere")
    audit_record(action="api_key.create", actor_user=user, workspace_id=other.id)
    for i in range(55):
        audit_record(
            action="api_key.create",
            actor_user=user,
            workspace_id=workspace.id,
            target_type="api_key",
            target_id=f"k{i}",
            metadata={"name": f"key {i}"},
        )
    bob = UserFactory(email="bob@example.com")
    audit_record(action="agent.sharing", actor_user=bob, workspace_id=workspace.id)

    with django_assert_max_num_queries(12):
        page = owner_client.get(reverse("console:audit"))
    assert page.status_code == 200
    text = page.content.decode()
    assert text.count('data-action="') == 50
    assert "Page 1 of 2 · 56 events" in text
    page2 = owner_client.get(reverse("console:audit") + "?page=2").content.decode()
    assert page2.count('data-action="') == 6
    assert "Page 2 of 2" in page2

    by_action = owner_client.get(reverse("console:audit") + "?action=agent").content.decode()
    assert by_action.count('data-action="agent.sharing"') == 1
    assert 'data-action="api_key.create"' not in by_action
    by_user = owner_client.get(reverse("console:audit") + "?user=BOB@").content.decode()
    assert by_user.count('data-action="') == 1
    # A filter keeps across pages.
    filtered = owner_client.get(reverse("console:audit") + "?action=api_key").content.decode()
    assert "action=api_key&amp;page=2" in filtered

    empty = owner_client.get(reverse("console:audit") + "?action=nothing.like.this")
    assert b"No events match" in empty.content


def test_audit_filter_errors_name_the_field(owner_client):
    response = owner_client.get(reverse("console:audit") + "?action=" + "x" * 65)
    assert response.status_code == 400
    assert b"at most 64 characters" in response.content


def test_audit_of_an_emptied_workspace_says_so(owner_client, user):
    team = make_workspace(owner=user, name="Team")
    owner_client.post(reverse("console:workspace_switch"), {"workspace": team.id})
    page = owner_client.get(reverse("console:audit"))
    assert b"No events" in page.content
