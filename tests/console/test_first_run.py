"""First run: the administrator `make run` creates can sign in at once, a command resets
their password, and /api/ answers with the error envelope even with DEBUG on."""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command

from apps.users.models import User
from apps.users.services import ensure_admin

pytestmark = pytest.mark.django_db


def test_ensure_admin_creates_a_verified_administrator_once(monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("ADMIN_EMAIL", "root@example.com")
    account = ensure_admin()
    assert account.created and account.email == "root@example.com" and account.password
    user = User.objects.get(email="root@example.com")
    assert user.is_superuser and user.is_staff and user.check_password(account.password)
    assert EmailAddress.objects.get(user=user).verified is True
    again = ensure_admin()
    assert (again.created, again.password, again.email) == (False, None, "root@example.com")
    assert User.objects.filter(is_superuser=True).count() == 1


def test_administrator_signs_in_through_the_form_without_a_code(client, monkeypatch):
    monkeypatch.setenv("ADMIN_EMAIL", "root@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", "correct horse battery")
    ensure_admin()
    response = client.post(
        "/accounts/login/", {"login": "root@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_reset_admin_password_prints_a_new_password(capsys, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "old password 1")
    ensure_admin()
    call_command("reset_admin_password")
    out = capsys.readouterr().out
    new = out.strip().splitlines()[-1].strip()
    user = User.objects.get(is_superuser=True)
    assert user.check_password(new) and not user.check_password("old password 1")


@pytest.mark.parametrize("debug", [True, False])
def test_api_paths_answer_with_the_envelope_in_every_profile(client, settings, debug):
    settings.DEBUG = debug
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_admin_index_has_the_dashboard_and_hides_groups_sites_and_idempotency(client):
    from tests.users.factories import UserFactory

    operator = UserFactory(email="op@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    html = client.get("/admin/").content.decode()
    assert 'id="operator-dashboard"' in html
    assert re.search(r"<span>database</span>\s*<span class=\"ops-ok[^\"]*\">up</span>", html)
    assert "Agent Platform admin" in html
    for hidden in ("/admin/auth/group/", "/admin/sites/site/", "/admin/core/idempotencyrecord/"):
        assert hidden not in html


def test_admin_add_api_key_shows_the_secret_once(client, user, workspace):
    from apps.users.models import ApiKey
    from apps.users.selectors import api_key_for_secret
    from tests.users.factories import UserFactory

    operator = UserFactory(email="op@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    response = client.post(
        "/admin/users/apikey/add/",
        {
            "user": user.pk,
            "workspace": workspace.pk,
            "name": "ops key",
            "expires_at_0": "",
            "expires_at_1": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    secret = shown[0].rsplit(" ", 1)[-1]
    key = ApiKey.objects.get(name="ops key")
    assert api_key_for_secret(secret=secret) == key and key.user == user
    assert secret not in client.get(f"/admin/users/apikey/{key.pk}/change/").content.decode()
    outsider = UserFactory(email="x@example.com")
    refused = client.post(
        "/admin/users/apikey/add/",
        {"user": outsider.pk, "workspace": workspace.pk, "name": "nope"},
    )
    assert refused.status_code == 200 and b"not a member" in refused.content
    assert not ApiKey.objects.filter(name="nope").exists()
