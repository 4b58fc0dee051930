"""A native app that registers itself (RFC 7591) and then runs the authorization code
flow with PKCE through authlib, against the running server."""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client

from apps.users.models import AuditEvent, DynamicClientRegistration
from tests.users.factories import UserFactory
from tests.users.oauth_helpers import browser_for, consent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REGISTERED = "http://127.0.0.1/callback"
# RFC 8252 §7.3: the app listens on whatever port it got; any port matches a loopback URI.
EPHEMERAL = "http://127.0.0.1:54321/callback"


@pytest.fixture(autouse=True)
def _insecure_transport_for_the_test_server(monkeypatch):
    # The live server speaks plain http on 127.0.0.1; authlib refuses that by default.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def test_a_self_registered_native_app_runs_the_code_flow(live_server):
    alice = UserFactory(email="alice@example.com", name="Alice")
    workspace = alice.memberships.get().workspace
    base = live_server.url
    metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
    assert metadata["registration_endpoint"] == f"{base}/oauth/register/"

    registered = httpx.post(
        metadata["registration_endpoint"],
        json={
            "client_name": "Notes for desktop",
            "redirect_uris": [REGISTERED],
            "token_endpoint_auth_method": "none",
            "scope": "openid read",
        },
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]

    client = OAuth2Client(
        client_id=client_id,
        token_endpoint_auth_method="none",
        scope="openid read",
        redirect_uri=EPHEMERAL,
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    browser = browser_for(base, alice, httpx)
    page = browser.get(url)
    assert page.status_code == 200
    assert "Notes for desktop" in page.text
    assert "registered itself dynamically" in page.text

    redirect = consent(browser, url, workspace_id=workspace.id)
    assert redirect.status_code == 302, redirect.text[:500]
    location = redirect.headers["Location"]
    assert location.startswith(EPHEMERAL + "?")
    assert parse_qs(urlsplit(location).query)["state"] == [state]

    token = client.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert token["scope"].split() == ["openid", "read"]
    assert "id_token" in token
    me = client.get(f"{base}/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["data"]["credential"]["workspace_id"] == str(workspace.id)
    assert DynamicClientRegistration.objects.get().first_used_at is not None

    # A public client refreshes with its client id alone; the pair rotates.
    refreshed = client.refresh_token(
        metadata["token_endpoint"], refresh_token=token["refresh_token"]
    )
    assert refreshed["access_token"] != token["access_token"]
    assert client.get(f"{base}/api/v1/me").status_code == 200

    # A scope it did not register is refused before any consent page.
    other = OAuth2Client(
        client_id=client_id,
        token_endpoint_auth_method="none",
        scope="write",
        redirect_uri=EPHEMERAL,
        code_challenge_method="S256",
    )
    wider, _ = other.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=generate_token(48)
    )
    refused = browser.get(wider)
    assert refused.status_code == 302
    assert parse_qs(urlsplit(refused.headers["Location"]).query)["error"] == ["invalid_scope"]

    assert AuditEvent.objects.filter(action="oauth_client.register", target_id=client_id).exists()
    assert AuditEvent.objects.filter(action="oauth.authorize", actor_user=alice).count() == 1
    browser.close()
    client.close()
    other.close()
