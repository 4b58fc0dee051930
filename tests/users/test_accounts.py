"""Accounts through allauth headless (the app API at /_allauth/app/v1/...)."""

import base64
import hashlib
import hmac
import re
import struct
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core import mail
from rest_framework.test import APIClient

from apps.core.selectors import system_settings_get
from apps.users.choices import Role
from apps.users.models import AuditEvent, Membership, User
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

APP = "/_allauth/app/v1"
PASSWORD = "correct-horse-battery-staple"


def totp_now(secret: str) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s), independent of allauth's implementation."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{value:06d}"


def verified_user(email="alice@example.com", **extra):
    user = UserFactory(email=email, password=PASSWORD, **extra)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


def login(client, email, password=PASSWORD):
    return client.post(f"{APP}/auth/login", {"email": email, "password": password}, format="json")


def bearer(access_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    return client


def test_signup_verify_by_code_then_tokens_reach_the_api():
    client = APIClient()
    response = client.post(
        f"{APP}/auth/signup", {"email": "new@example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 401
    body = response.json()
    assert {"id": "verify_email", "is_pending": True} in body["data"]["flows"]
    session_token = body["meta"]["session_token"]
    assert "access_token" not in body["meta"]
    user = User.objects.get(email="new@example.com")
    # The account has its personal workspace, like every other user.
    assert Membership.objects.get(user=user).role == Role.OWNER
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", mail.outbox[0].body, re.M).group(1)

    verified = client.post(
        f"{APP}/auth/email/verify", {"key": code}, format="json", HTTP_X_SESSION_TOKEN=session_token
    )
    assert verified.status_code == 200, verified.content
    meta = verified.json()["meta"]
    assert meta["is_authenticated"] is True
    me = bearer(meta["access_token"]).get("/api/v1/me")
    assert me.status_code == 200
    data = me.json()["data"]
    assert data["email"] == "new@example.com"
    assert data["email_verified"] is True
    assert data["mfa_enabled"] is False
    assert data["credential"] == {"kind": "session", "workspace_id": None, "scopes": None}
    assert [(w["is_personal"], w["role"]) for w in data["workspaces"]] == [(True, "owner")]

    refreshed = client.post(
        f"{APP}/tokens/refresh", {"refresh_token": meta["refresh_token"]}, format="json"
    )
    assert refreshed.status_code == 200, refreshed.content
    new_access = refreshed.json()["data"]["access_token"]
    assert bearer(new_access).get("/api/v1/me").status_code == 200


def test_signup_refused_when_registration_is_closed_login_still_works():
    verified_user()
    settings_row = system_settings_get()
    settings_row.allow_registration = False
    settings_row.save()
    client = APIClient()
    config = client.get(f"{APP}/config").json()["data"]
    assert config["account"]["is_open_for_signup"] is False
    response = client.post(
        f"{APP}/auth/signup", {"email": "new@example.com", "password": PASSWORD}, format="json"
    )
    assert response.status_code == 403
    assert not User.objects.filter(email="new@example.com").exists()
    assert len(mail.outbox) == 0
    assert login(APIClient(), "alice@example.com").status_code == 200


def test_unverified_email_cannot_sign_in():
    UserFactory(email="bob@example.com", password=PASSWORD)
    EmailAddress.objects.create(
        user=User.objects.get(email="bob@example.com"),
        email="bob@example.com",
        primary=True,
        verified=False,
    )
    response = login(APIClient(), "bob@example.com")
    assert response.status_code == 401
    body = response.json()
    assert {"id": "verify_email", "is_pending": True} in body["data"]["flows"]
    assert body["meta"]["is_authenticated"] is False
    assert "access_token" not in body["meta"]


def test_wrong_password_locks_out_after_five_attempts():
    user = verified_user()
    client = APIClient()
    for _ in range(5):
        response = login(client, "alice@example.com", "wrong-password")
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "email_password_mismatch"
    locked = login(client, "alice@example.com")  # even the right password now
    assert locked.status_code == 400
    assert locked.json()["errors"][0]["code"] == "too_many_login_attempts"
    assert "access_token" not in locked.json().get("meta", {})
    failed = AuditEvent.objects.filter(action="login.failed", actor_user=user)
    assert failed.count() == 5
    assert not AuditEvent.objects.filter(action="login.success").exists()


def test_mfa_login_needs_the_totp_code_or_a_recovery_code():
    user = verified_user()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    recovery = RecoveryCodes.activate(user)
    client = APIClient()
    first = login(client, "alice@example.com")
    assert first.status_code == 401
    body = first.json()
    pending = [f for f in body["data"]["flows"] if f.get("is_pending")]
    assert [(f["id"], sorted(f["types"])) for f in pending] == [
        ("mfa_authenticate", ["recovery_codes", "totp"])
    ]
    assert "access_token" not in body["meta"]
    session_token = body["meta"]["session_token"]
    wrong = client.post(
        f"{APP}/auth/2fa/authenticate",
        {"code": "000000" if totp_now(secret) != "000000" else "111111"},
        format="json",
        HTTP_X_SESSION_TOKEN=session_token,
    )
    assert wrong.status_code == 400
    done = client.post(
        f"{APP}/auth/2fa/authenticate",
        {"code": totp_now(secret)},
        format="json",
        HTTP_X_SESSION_TOKEN=session_token,
    )
    assert done.status_code == 200, done.content
    me = bearer(done.json()["meta"]["access_token"]).get("/api/v1/me").json()["data"]
    assert me["mfa_enabled"] is True

    # A recovery code works once.
    code = recovery.get_unused_codes()[0]
    again = login(APIClient(), "alice@example.com").json()["meta"]["session_token"]
    used = APIClient().post(
        f"{APP}/auth/2fa/authenticate", {"code": code}, format="json", HTTP_X_SESSION_TOKEN=again
    )
    assert used.status_code == 200
    third = login(APIClient(), "alice@example.com").json()["meta"]["session_token"]
    reused = APIClient().post(
        f"{APP}/auth/2fa/authenticate", {"code": code}, format="json", HTTP_X_SESSION_TOKEN=third
    )
    assert reused.status_code == 400


def test_totp_setup_through_the_api_is_audited(django_capture_on_commit_callbacks):
    user = verified_user()
    client = APIClient()
    meta = login(client, "alice@example.com").json()["meta"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {meta['access_token']}")
    # Changing MFA needs a fresh password confirmation.
    again = client.post(f"{APP}/auth/reauthenticate", {"password": PASSWORD}, format="json")
    assert again.status_code == 200, again.content
    setup = client.get(f"{APP}/account/authenticators/totp")
    assert setup.status_code == 404  # not set up yet; the response carries a secret
    secret = setup.json()["meta"]["secret"]
    with django_capture_on_commit_callbacks(execute=True):
        activated = client.post(
            f"{APP}/account/authenticators/totp",
            {"code": totp_now(secret)},
            format="json",
        )
    assert activated.status_code == 200, activated.content
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).count() == 1
    assert AuditEvent.objects.filter(action="mfa.add", actor_user=user).exists()


def test_disabled_user_cannot_sign_in_and_their_jwt_stops_working():
    user = verified_user()
    access = login(APIClient(), "alice@example.com").json()["meta"]["access_token"]
    assert bearer(access).get("/api/v1/me").status_code == 200
    user.is_active = False
    user.save()
    assert bearer(access).get("/api/v1/me").status_code == 401
    assert login(APIClient(), "alice@example.com").status_code in (400, 401)


def test_disabled_user_session_is_refused(client_for):
    user = verified_user()
    api = client_for(user)
    assert api.get("/api/v1/me").status_code == 200
    user.is_active = False
    user.save()
    assert api.get("/api/v1/me").status_code == 401


def test_provider_list_for_login_pages():
    from allauth.socialaccount.models import SocialApp
    from django.contrib.sites.models import Site

    app = SocialApp.objects.create(
        provider="openid_connect",
        provider_id="corp-sso",
        name="Corporate SSO",
        client_id="platform",
        secret="s3cret-value",
        settings={"server_url": "https://sso.example.com"},
    )
    app.sites.add(Site.objects.get_current())
    response = APIClient().get("/api/v1/auth/providers")
    assert response.status_code == 200
    assert response.json()["data"] == [
        {
            "id": "corp-sso",
            "name": "Corporate SSO",
            "provider": "openid_connect",
            "client_id": "platform",
        }
    ]
    assert "s3cret-value" not in response.content.decode()


def test_wrong_mfa_codes_lock_out():
    user = verified_user()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    right = totp_now(secret)
    wrong = "000000" if right != "000000" else "111111"
    client = APIClient()
    token = login(client, "alice@example.com").json()["meta"]["session_token"]
    for _ in range(5):
        response = client.post(
            f"{APP}/auth/2fa/authenticate",
            {"code": wrong},
            format="json",
            HTTP_X_SESSION_TOKEN=token,
        )
        assert response.status_code == 400
    locked = client.post(
        f"{APP}/auth/2fa/authenticate", {"code": right}, format="json", HTTP_X_SESSION_TOKEN=token
    )
    assert locked.status_code == 400
    assert locked.json()["errors"][0]["code"] == "too_many_login_attempts"
    assert AuditEvent.objects.filter(action="mfa.failed", actor_user=user).count() >= 5
