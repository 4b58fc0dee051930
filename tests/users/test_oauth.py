"""OAuth2 server rules, driven through Django's test client (the full authlib flow against
the running server is in test_oauth_flow.py)."""

import base64
import hashlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from oauth2_provider.models import AccessToken, Application, Grant

from apps.users.choices import Role
from apps.users.models import AuditEvent, OAuthClient, Workspace
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

REDIRECT = "https://client.example/callback"
VERIFIER = "v" * 64


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def app(api):
    response = api.post(
        "/api/v1/oauth-applications",
        {
            "name": "Notes",
            "client_type": "confidential",
            "grant_type": "authorization-code",
            "redirect_uris": [REDIRECT, "http://127.0.0.1/cb"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["data"]


@pytest.fixture
def browser(user):
    client = Client()
    client.force_login(user)
    return client


def authorize_params(app, **overrides):
    params = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "read",
        "state": "st4te",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def approve(browser, app, *, workspace_id, **overrides):
    """GET the consent page, POST it; returns the POST response."""
    url = "/oauth/authorize/?" + urlencode(authorize_params(app, **overrides))
    page = browser.get(url)
    assert page.status_code == 200, page.content[:300]
    form = BeautifulSoup(page.content, "html.parser").find("form", id="authorizationForm")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    data.update(allow="Authorize", workspace=str(workspace_id))
    return browser.post(url, data)


def code_from(response) -> str:
    assert response.status_code == 302, response.content[:300]
    return parse_qs(urlsplit(response["Location"]).query)["code"][0]


def exchange(app, code, *, verifier=VERIFIER, redirect_uri=REDIRECT):
    return Client().post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )


def test_registration_shows_the_secret_once(api, app, workspace, user):
    assert len(app["client_secret"]) >= 32
    assert app["workspace_id"] == str(workspace.id)
    stored = Application.objects.get(client_id=app["client_id"])
    assert stored.client_secret != app["client_secret"]  # hashed at rest
    assert stored.user == user
    for response in (
        api.get(f"/api/v1/oauth-applications/{app['id']}"),
        api.get("/api/v1/oauth-applications"),
    ):
        assert response.status_code == 200
        assert app["client_secret"] not in response.content.decode()
        assert "client_secret" not in response.content.decode()


@pytest.mark.parametrize(
    "uri",
    [
        "http://client.example/cb",
        "http://localhost/cb",
        "https://client.example/cb#frag",
        "https://*.example.com/cb",
        "myapp://cb",
    ],
)
def test_registration_refuses_insecure_redirect_uris(api, uri):
    response = api.post(
        "/api/v1/oauth-applications",
        {
            "name": "x",
            "client_type": "public",
            "grant_type": "authorization-code",
            "redirect_uris": [uri],
        },
        format="json",
    )
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "redirect_uris"
    assert Application.objects.count() == 0


def test_registration_needs_admin(client_for, workspace):
    bob = UserFactory()
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    bob_api = client_for(bob)
    bob_api.credentials(HTTP_X_WORKSPACE_ID=str(workspace.id))
    response = bob_api.post(
        "/api/v1/oauth-applications",
        {
            "name": "x",
            "client_type": "public",
            "grant_type": "authorization-code",
            "redirect_uris": [REDIRECT],
        },
        format="json",
    )
    assert_error(response, 403, "forbidden")
    assert Application.objects.count() == 0


def test_outsiders_get_404_on_applications(app, outsider):
    obj = OAuthClient.objects.get(pk=app["id"])
    url = f"/api/v1/oauth-applications/{app['id']}"
    assert_outsiders_get_404(method="get", url=url, outsider=outsider, obj=obj)
    assert_outsiders_get_404(
        method="patch", url=url, outsider=outsider, obj=obj, data={"name": "pwned"}
    )
    assert_outsiders_get_404(method="delete", url=url, outsider=outsider, obj=obj)
    assert Application.objects.filter(client_id=app["client_id"], name="Notes").exists()


def test_code_is_bound_to_the_chosen_workspace_and_single_use(browser, app, user):
    team = Workspace.objects.create(name="Team")
    add_member(workspace=team, user=user, role=Role.ADMIN)
    code = code_from(approve(browser, app, workspace_id=team.id))
    first = exchange(app, code)
    assert first.status_code == 200, first.content
    token = first.json()["access_token"]
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").json()["data"]
    assert me["credential"]["workspace_id"] == str(team.id)
    assert [w["id"] for w in me["workspaces"]] == [str(team.id)]
    # The same code again is refused, and revokes what its first use gave: whoever
    # replays it may have stolen it (RFC 6749 §4.1.2).
    refresh = first.json()["refresh_token"]
    again = exchange(app, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    refreshed = Client().post(
        "/oauth/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert refreshed.status_code == 400
    event = AuditEvent.objects.get(action="oauth.code_replayed")
    assert (event.workspace_id, event.target_id) == (team.id, app["client_id"])


def test_consent_refuses_a_workspace_that_is_not_yours(browser, app):
    foreign = Workspace.objects.create(name="Foreign")
    response = approve(browser, app, workspace_id=foreign.id)
    assert response.status_code == 200  # the form again, with the error
    assert b"Choose one of your workspaces" in response.content
    assert Grant.objects.count() == 0


def test_denied_consent_redirects_with_access_denied(browser, app):
    url = "/oauth/authorize/?" + urlencode(authorize_params(app))
    page = browser.get(url)
    form = BeautifulSoup(page.content, "html.parser").find("form", id="authorizationForm")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    response = browser.post(url, data)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["error"] == ["access_denied"]
    assert Grant.objects.count() == 0


def test_plain_pkce_is_refused(browser, app, workspace):
    url = "/oauth/authorize/?" + urlencode(
        authorize_params(app, code_challenge=VERIFIER, code_challenge_method="plain")
    )
    response = browser.get(url)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert response["Location"].startswith(REDIRECT + "?")
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st4te"]
    # Submitting the form directly with "plain" does not get a code either.
    posted = browser.post(
        url,
        {
            **authorize_params(app, code_challenge=VERIFIER, code_challenge_method="plain"),
            "allow": "Authorize",
            "workspace": str(workspace.id),
        },
    )
    assert "code=" not in posted.get("Location", "")
    assert Grant.objects.count() == 0


def test_missing_pkce_is_refused(browser, app):
    url = "/oauth/authorize/?" + urlencode(
        authorize_params(app, code_challenge=None, code_challenge_method=None)
    )
    response = browser.get(url)
    assert response.status_code == 302
    assert "error=invalid_request" in response["Location"]
    assert Grant.objects.count() == 0


def test_wrong_verifier_is_refused(browser, app, workspace):
    code = code_from(approve(browser, app, workspace_id=workspace.id))
    response = exchange(app, code, verifier="w" * 64)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == 0


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://client.example/callback/other",
        "https://client.example/callback?x=1",
        "https://evil.example/callback",
        "http://client.example/callback",
    ],
)
def test_redirect_uri_mismatch_is_refused_without_redirecting(browser, app, redirect_uri):
    url = "/oauth/authorize/?" + urlencode(authorize_params(app, redirect_uri=redirect_uri))
    response = browser.get(url)
    assert response.status_code == 400
    assert "Location" not in response
    assert b"redirect" in response.content.lower()
    assert Grant.objects.count() == 0


def test_token_exchange_with_another_redirect_uri_is_refused(browser, app, workspace):
    code = code_from(approve(browser, app, workspace_id=workspace.id))
    response = exchange(app, code, redirect_uri="https://client.example/other")
    assert response.status_code == 400
    assert AccessToken.objects.count() == 0


def test_loopback_redirect_for_native_apps_accepts_any_port(browser, app, workspace):
    response = approve(
        browser, app, workspace_id=workspace.id, redirect_uri="http://127.0.0.1:53127/cb"
    )
    assert response.status_code == 302
    assert response["Location"].startswith("http://127.0.0.1:53127/cb?code=")


def test_client_credentials_act_as_the_registering_admin_in_its_workspace(api, workspace, user):
    created = api.post(
        "/api/v1/oauth-applications",
        {"name": "Cron", "client_type": "confidential", "grant_type": "client-credentials"},
        format="json",
    ).json()["data"]
    response = Client().post(
        "/oauth/token/",
        {"grant_type": "client_credentials", "scope": "workspaces:read"},
        HTTP_AUTHORIZATION="Basic "
        + base64.b64encode(f"{created['client_id']}:{created['client_secret']}".encode()).decode(),
    )
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").json()["data"]
    assert me["id"] == str(user.id)
    assert me["credential"] == {
        "kind": "oauth2",
        "workspace_id": str(workspace.id),
        "scopes": ["workspaces:read"],
    }
    denied = Client().patch(
        f"/api/v1/workspaces/{workspace.id}",
        {"name": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert_error(denied, 403, "forbidden")


def test_disabled_user_token_is_refused(browser, app, workspace, user):
    token = exchange(app, code_from(approve(browser, app, workspace_id=workspace.id))).json()
    bearer = f"Bearer {token['access_token']}"
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=bearer).status_code == 200
    user.is_active = False
    user.save()
    assert_error(Client().get("/api/v1/workspaces", HTTP_AUTHORIZATION=bearer), 401, "unauthorized")


def test_removed_member_token_is_refused(browser, app, user):
    owner = UserFactory()
    team = Workspace.objects.create(name="Team")
    add_member(workspace=team, user=owner, role=Role.OWNER)
    membership = add_member(workspace=team, user=user, role=Role.MEMBER)
    token = exchange(app, code_from(approve(browser, app, workspace_id=team.id))).json()
    bearer = f"Bearer {token['access_token']}"
    assert Client().get("/api/v1/workspaces", HTTP_AUTHORIZATION=bearer).status_code == 200
    membership.delete()
    assert_error(Client().get("/api/v1/workspaces", HTTP_AUTHORIZATION=bearer), 401, "unauthorized")


def test_user_lists_and_revokes_remembered_consent(browser, app, workspace, api, user):
    token = exchange(app, code_from(approve(browser, app, workspace_id=workspace.id))).json()
    listed = api.get("/api/v1/me/authorizations").json()["data"]
    application_id = Application.objects.get(client_id=app["client_id"]).id
    assert [(a["application_id"], a["workspace_id"], a["scopes"]) for a in listed] == [
        (application_id, str(workspace.id), ["read"])
    ]
    assert api.delete(f"/api/v1/me/authorizations/{application_id}").status_code == 204
    bearer = f"Bearer {token['access_token']}"
    assert_error(Client().get("/api/v1/me", HTTP_AUTHORIZATION=bearer), 401, "unauthorized")
    refresh = Client().post(
        "/oauth/token/",
        {
            "grant_type": "refresh_token",
            "refresh_token": token["refresh_token"],
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )
    assert refresh.status_code == 400
    assert AuditEvent.objects.filter(action="oauth.revoke", actor_user=user).count() == 1
    assert_error(
        api.delete(f"/api/v1/me/authorizations/{application_id}"),
        404,
        "oauth_application_not_found",
    )


def test_implicit_response_type_is_refused(browser, app):
    url = "/oauth/authorize/?" + urlencode(authorize_params(app, response_type="token"))
    response = browser.get(url)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["error"] == ["unauthorized_client"]
    assert "access_token" not in response["Location"]
    assert AccessToken.objects.count() == 0


# --- hardening: what real OAuth clients check ----------------------------------------------


def _query(response):
    return parse_qs(urlsplit(response["Location"]).query)


def test_error_redirects_carry_iss(browser, app, workspace):
    """RFC 9207: a refused PKCE method and a refused consent both name the issuer."""
    url = "/oauth/authorize/?" + urlencode(
        authorize_params(app, code_challenge=VERIFIER, code_challenge_method="plain")
    )
    refused = browser.get(url)
    assert _query(refused)["error"] == ["invalid_request"]
    assert _query(refused)["iss"] == ["http://testserver"]

    url = "/oauth/authorize/?" + urlencode(authorize_params(app))
    page = browser.get(url)
    form = BeautifulSoup(page.content, "html.parser").find("form", id="authorizationForm")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    denied = browser.post(url, data)
    assert _query(denied)["error"] == ["access_denied"]
    assert _query(denied)["iss"] == ["http://testserver"]
    # A success carries it once, not twice.
    approved = approve(browser, app, workspace_id=workspace.id)
    assert _query(approved)["iss"] == ["http://testserver"]


def test_discovery_says_what_the_server_does(client):
    discovery = client.get("/.well-known/openid-configuration").json()
    assert discovery["grant_types_supported"] == [
        "authorization_code",
        "client_credentials",
        "refresh_token",
    ]
    assert "none" in discovery["token_endpoint_auth_methods_supported"]
    assert discovery["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"sub", "email", "email_verified", "name"} <= set(discovery["claims_supported"])
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize(("resource", "path"), [("mcp", "/mcp"), ("api/v1", "/api/v1/agents")])
def test_protected_resource_metadata_is_named_on_401(client, resource, path):
    response = client.post(path, {}, content_type="application/json")
    assert response.status_code == 401
    url = f"http://testserver/.well-known/oauth-protected-resource/{resource}"
    assert f'resource_metadata="{url}"' in response["WWW-Authenticate"]
    document = client.get(f"/.well-known/oauth-protected-resource/{resource}").json()
    assert document["resource"] == f"http://testserver/{resource}"
    assert document["authorization_servers"] == ["http://testserver"]
    # /mcp lists what it checks, so an MCP client asks for no more.
    expected = "conversations:write" if resource == "mcp" else "read"
    assert expected in document["scopes_supported"]
