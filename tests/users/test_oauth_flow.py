"""A third-party client built with authlib against the running server."""

import html
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from apps.users.models import AuditEvent, OAuthWorkspaceBinding
from tests.users.factories import UserFactory
from tests.users.oauth_helpers import browser_for, consent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REDIRECT = "https://client.example/callback"


@pytest.fixture(autouse=True)
def _insecure_transport_for_the_test_server(monkeypatch):
    # The live server speaks plain http on 127.0.0.1; authlib refuses that by default.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def register_app(client_for, owner, **extra):
    api = client_for(owner)
    body = {
        "name": "Calendar sync",
        "client_type": "confidential",
        "grant_type": "authorization-code",
        "redirect_uris": [REDIRECT],
        **extra,
    }
    response = api.post("/api/v1/oauth-applications", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def test_authorization_code_pkce_refresh_reuse_and_revocation(live_server, client_for):
    alice = UserFactory(email="alice@example.com", name="Alice")
    workspace = alice.memberships.get().workspace
    app = register_app(client_for, alice)
    base = live_server.url

    discovery = httpx.get(f"{base}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == base
    assert discovery["authorization_endpoint"] == f"{base}/oauth/authorize/"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert "plain" not in discovery["code_challenge_methods_supported"]
    metadata = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == base
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
    }
    assert metadata["revocation_endpoint"] == f"{base}/oauth/revoke_token/"
    assert metadata["introspection_endpoint"] == f"{base}/oauth/introspect/"

    client = OAuth2Client(
        client_id=app["client_id"],
        client_secret=app["client_secret"],
        scope="openid profile email read",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = generate_token(48)
    nonce = generate_token(16)
    url, state = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    browser = browser_for(base, alice, httpx)
    page = browser.get(url)
    assert page.status_code == 200
    assert "Calendar sync" in page.text
    assert "openid" in page.text and "read" in page.text
    assert html.escape(workspace.name) in page.text

    redirect = consent(browser, url, workspace_id=workspace.id)
    assert redirect.status_code == 302, redirect.text[:500]
    location = redirect.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    assert parse_qs(urlsplit(location).query)["iss"] == [base]
    assert parse_qs(urlsplit(location).query)["state"] == [state]

    token = client.fetch_token(
        discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"].split() == ["openid", "profile", "email", "read"]

    # The ID token verifies against the published JWKS with a standard JOSE library.
    jwks = KeySet.import_key_set(httpx.get(discovery["jwks_uri"]).json())
    id_token = jwt.decode(token["id_token"], jwks, algorithms=["RS256"])
    assert id_token.header["alg"] == "RS256"
    claims = id_token.claims
    assert claims["iss"] == base
    assert claims["aud"] == app["client_id"]
    assert claims["sub"] == str(alice.id)
    assert claims["nonce"] == nonce
    assert claims["email"] == "alice@example.com"
    userinfo = client.get(discovery["userinfo_endpoint"]).json()
    assert userinfo["sub"] == str(alice.id)
    assert userinfo["email"] == "alice@example.com"

    # The API accepts the token, in the chosen workspace, with its scopes.
    me = client.get(f"{base}/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["data"]["credential"] == {
        "kind": "oauth2",
        "workspace_id": str(workspace.id),
        "scopes": ["email", "openid", "profile", "read"],
    }
    workspaces = client.get(f"{base}/api/v1/workspaces").json()["data"]
    assert [w["id"] for w in workspaces] == [str(workspace.id)]
    # A read scope cannot write.
    denied = client.patch(f"{base}/api/v1/workspaces/{workspace.id}", json={"name": "x"})
    assert denied.status_code == 403

    # Refresh: a new pair; the old refresh token is refused and burns the family.
    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(discovery["token_endpoint"], refresh_token=first_refresh)
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != first_refresh
    assert client.get(f"{base}/api/v1/me").status_code == 200
    assert (
        OAuthWorkspaceBinding.objects.filter(
            access_token__isnull=False, workspace=workspace
        ).count()
        == 1
    )

    with pytest.raises(OAuthError) as reused:
        client.refresh_token(discovery["token_endpoint"], refresh_token=first_refresh)
    assert reused.value.error == "invalid_grant"
    with pytest.raises(OAuthError):
        client.refresh_token(discovery["token_endpoint"], refresh_token=refreshed["refresh_token"])

    # A fresh authorization, then RFC 7009 revocation of its access token.
    verifier = generate_token(48)
    url, _ = client.create_authorization_url(
        discovery["authorization_endpoint"], code_verifier=verifier
    )
    location = consent(browser, url, workspace_id=workspace.id).headers["Location"]
    token = client.fetch_token(
        discovery["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert client.get(f"{base}/api/v1/me").status_code == 200
    introspection = httpx.post(
        metadata["introspection_endpoint"],
        data={"token": token["access_token"]},
        auth=(app["client_id"], app["client_secret"]),
    ).json()
    assert introspection["active"] is True
    assert introspection["scope"] == "openid profile email read"
    revoked = client.revoke_token(
        metadata["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200
    after = client.get(f"{base}/api/v1/me")
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthorized"
    assert AuditEvent.objects.filter(action="oauth.authorize", actor_user=alice).count() == 2
    # Close keep-alive sockets so the server threads release their database connections.
    browser.close()
    client.close()
