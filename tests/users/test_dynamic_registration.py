"""RFC 7591 dynamic client registration at /oauth/register/ through Django's test client:
what is accepted, each refusal (with the field named), the limits, the switch, the
expiry of unused clients, and the consent rules for a client that registered itself.
(The authlib flow and the MCP SDK against a running server: test_dynamic_registration_flow.py
and tests/conversations/test_mcp_oauth.py.)"""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from rest_framework.exceptions import AuthenticationFailed

from apps.users.authentication import authenticate_bearer
from apps.users.models import AuditEvent, DynamicClientRegistration
from apps.users.tasks import purge_unused_dynamic_clients
from tests.users.test_oauth import VERIFIER, s256

pytestmark = pytest.mark.django_db

LOOPBACK = "http://127.0.0.1:33418/callback"


def register(client: Client, body, **headers):
    return client.post(
        "/oauth/register/",
        json.dumps(body) if not isinstance(body, str | bytes) else body,
        content_type="application/json",
        **headers,
    )


def mcp_metadata(**overrides):
    """What the MCP SDK sends (OAuthClientMetadata dumped without nulls)."""
    body = {
        "redirect_uris": [LOOPBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "conversations:read conversations:write",
        "client_name": "Claude Desktop",
        "application_type": "native",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def assert_refused(response, error: str, field: str):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith(f"{field}:"), body
    assert Application.objects.count() == 0
    assert DynamicClientRegistration.objects.count() == 0
    assert not AuditEvent.objects.filter(action="oauth_client.register").exists()


def test_a_public_client_registers_itself_and_is_audited(client):
    response = register(
        client,
        mcp_metadata(software_id="claude-desktop", software_version="1.2"),
        HTTP_USER_AGENT="mcp-test/1.0",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    app = Application.objects.get()
    assert body == {
        "client_id": app.client_id,
        "client_id_issued_at": int(app.created.timestamp()),
        "client_name": "Claude Desktop",
        "redirect_uris": [LOOPBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": "conversations:read conversations:write",
        "software_id": "claude-desktop",
        "software_version": "1.2",
    }
    assert "client_secret" not in body
    assert (app.client_type, app.authorization_grant_type) == ("public", "authorization-code")
    assert app.registration_source == "dcr"
    assert app.skip_authorization is False
    assert app.user is None
    assert app.redirect_uris == LOOPBACK
    registration = app.dynamic_registration
    assert registration.ip == "203.0.113.9"
    assert registration.user_agent == "mcp-test/1.0"
    assert registration.first_used_at is None
    event = AuditEvent.objects.get(action="oauth_client.register")
    assert event.ip == "203.0.113.9"
    assert event.actor_user is None
    assert event.target_id == app.client_id
    assert event.metadata["client_name"] == "Claude Desktop"
    assert event.metadata["redirect_uris"] == [LOOPBACK]


def test_defaults_make_a_public_code_client(client):
    response = register(client, {"redirect_uris": ["com.example.notes:/oauth2redirect"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["client_name"] == "Unnamed client"
    assert "scope" not in body


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:8765/callback",
        "http://localhost:3030/callback",
        "http://[::1]:9000/cb",
        "com.example.app:/oauth2redirect",
        "com.example.app://callback",
        "http://127.0.0.1:33418/callback?client=cli",
    ],
)
def test_device_local_redirect_uris_are_accepted(client, uri):
    response = register(client, {"redirect_uris": [uri]})
    assert response.status_code == 201, response.content
    assert response.json()["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "uri",
    [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "https://attacker.example/callback",
        "http://example.com/callback",
        "http://127.0.0.1.nip.io/callback",
        "http://127.0.0.1:3030/callback#frag",
        "http://*.localhost/callback",
        "http://user:pw@127.0.0.1/callback",
        "http://127.0.0.1/call back",
        "http://127.0.0.1:notaport/cb",
        "myapp:/callback",
        "/relative/callback",
        "",
        "http://127.0.0.1/" + "a" * 600,
    ],
)
def test_other_redirect_uris_are_refused(client, uri):
    assert_refused(
        register(client, {"redirect_uris": [uri]}), "invalid_redirect_uri", "redirect_uris"
    )


def test_https_redirect_needs_the_operator_to_list_its_host(client, settings):
    uri = "https://claude.ai/api/mcp/auth_callback"
    assert_refused(
        register(client, {"redirect_uris": [uri]}), "invalid_redirect_uri", "redirect_uris"
    )
    settings.OAUTH2_DYNAMIC_REGISTRATION_HTTPS_HOSTS = ["claude.ai"]
    response = register(client, {"redirect_uris": [uri]})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        ({}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": []}, "invalid_redirect_uri", "redirect_uris"),
        ({"redirect_uris": LOOPBACK}, "invalid_client_metadata", "redirect_uris"),
        ({"redirect_uris": [LOOPBACK, 3]}, "invalid_client_metadata", "redirect_uris"),
        (
            {"redirect_uris": [f"http://127.0.0.1:{4000 + i}/cb" for i in range(6)]},
            "invalid_redirect_uri",
            "redirect_uris",
        ),
        (
            {"redirect_uris": [LOOPBACK], "grant_types": ["client_credentials"]},
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            {"redirect_uris": [LOOPBACK], "grant_types": ["authorization_code", "implicit"]},
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            {"redirect_uris": [LOOPBACK], "grant_types": ["refresh_token"]},
            "invalid_client_metadata",
            "grant_types",
        ),
        (
            {"redirect_uris": [LOOPBACK], "response_types": ["token"]},
            "invalid_client_metadata",
            "response_types",
        ),
        (
            {"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "client_secret_basic"},
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            {"redirect_uris": [LOOPBACK], "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
            "token_endpoint_auth_method",
        ),
        (
            {"redirect_uris": [LOOPBACK], "scope": "read admin:everything"},
            "invalid_client_metadata",
            "scope",
        ),
        (
            {"redirect_uris": [LOOPBACK], "client_name": "x" * 101},
            "invalid_client_metadata",
            "client_name",
        ),
        (
            {"redirect_uris": [LOOPBACK], "client_name": {"en": "Notes"}},
            "invalid_client_metadata",
            "client_name",
        ),
        (
            {"redirect_uris": [LOOPBACK], "software_id": "s" * 101},
            "invalid_client_metadata",
            "software_id",
        ),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(client, body, error, field):
    assert_refused(register(client, body), error, field)


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"a string"'])
def test_a_body_that_is_not_a_json_object_is_refused(client, raw):
    response = register(client, raw)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert Application.objects.count() == 0


def test_an_oversized_body_is_refused(client):
    response = register(client, mcp_metadata(contacts=["x" * 20_000]))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert "16384 bytes" in response.json()["error_description"]
    assert Application.objects.count() == 0


def test_only_post_is_allowed(client):
    assert client.get("/oauth/register/").status_code == 405


def test_registrations_are_rate_limited_per_address(client, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "oauth_register": "2/hour"}
    for _ in range(2):
        ok = register(client, mcp_metadata(), REMOTE_ADDR="198.51.100.7")
        assert ok.status_code == 201
    refused = register(client, mcp_metadata(), REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429
    assert refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert refused["X-RateLimit-Remaining"] == "0"
    assert Application.objects.count() == 2
    # Another address has its own budget.
    assert register(client, mcp_metadata(), REMOTE_ADDR="198.51.100.8").status_code == 201


def test_too_many_unused_registrations_pause_registration(client, settings):
    settings.OAUTH2_DYNAMIC_CLIENTS_PENDING_MAX = 2
    for _ in range(2):
        assert register(client, mcp_metadata()).status_code == 201
    refused = register(client, mcp_metadata())
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    assert Application.objects.count() == 2
    # A client that got a token no longer counts as waiting.
    DynamicClientRegistration.objects.filter(
        pk=DynamicClientRegistration.objects.first().pk
    ).update(first_used_at=timezone.now())
    assert register(client, mcp_metadata()).status_code == 201


def test_the_operator_can_turn_registration_off(client, settings):
    discovery = client.get("/.well-known/openid-configuration").json()
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert discovery["registration_endpoint"] == "http://testserver/oauth/register/"
    assert metadata["registration_endpoint"] == "http://testserver/oauth/register/"

    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "DCR_ENABLED": False}
    response = register(client, mcp_metadata())
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert Application.objects.count() == 0
    assert "registration_endpoint" not in client.get("/.well-known/openid-configuration").json()
    assert (
        "registration_endpoint" not in client.get("/.well-known/oauth-authorization-server").json()
    )


def test_unused_clients_expire_and_used_ones_stay(client, settings, user):
    settings.OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS = 3600
    ids = [register(client, mcp_metadata()).json()["client_id"] for _ in range(3)]
    old = timezone.now() - timedelta(hours=2)
    DynamicClientRegistration.objects.filter(application__client_id__in=ids[:2]).update(
        created_at=old
    )
    DynamicClientRegistration.objects.filter(application__client_id=ids[1]).update(
        first_used_at=old
    )
    manual = Application.objects.create(
        name="Manual",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://x.example/cb",
    )
    assert purge_unused_dynamic_clients.delay().get() == 1
    assert sorted(Application.objects.values_list("client_id", flat=True)) == sorted(
        [ids[1], ids[2], manual.client_id]
    )
    # The audit trail keeps the registration of the deleted client.
    assert AuditEvent.objects.filter(action="oauth_client.register", target_id=ids[0]).exists()


def test_protected_resource_metadata_of_mcp_lists_the_scopes_it_checks(client):
    mcp = client.get("/.well-known/oauth-protected-resource/mcp").json()
    assert mcp["scopes_supported"] == ["conversations:read", "conversations:write"]
    api = client.get("/.well-known/oauth-protected-resource/api/v1").json()
    assert {"read", "write", "agents:read"} <= set(api["scopes_supported"])


# --- consent ------------------------------------------------------------------------------


@pytest.fixture
def browser(user):
    session = Client()
    session.force_login(user)
    return session


def authorize_url(client_id: str, **extra) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": LOOPBACK,
        "scope": "conversations:read",
        "state": "st4te",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        **extra,
    }
    return "/oauth/authorize/?" + urlencode(params)


def consent(browser, url: str, workspace_id):
    page = browser.get(url)
    assert page.status_code == 200, page.content[:300]
    form = BeautifulSoup(page.content, "html.parser").find("form", id="authorizationForm")
    data = {i["name"]: i.get("value", "") for i in form.find_all("input", type="hidden")}
    data.update(allow="Authorize", workspace=str(workspace_id))
    return browser.post(url, data)


def exchange(client_id: str, code: str, redirect_uri: str = LOOPBACK):
    return Client().post(
        "/oauth/token/",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": VERIFIER,
            "client_id": client_id,
        },
    )


def test_consent_page_says_the_client_is_unverified_and_is_never_skipped(
    client, browser, workspace
):
    client_id = register(client, mcp_metadata()).json()["client_id"]
    page = browser.get(authorize_url(client_id))
    assert page.status_code == 200
    notice = BeautifulSoup(page.content, "html.parser").find(id="unverified-client")
    assert notice is not None
    assert "registered itself dynamically" in notice.text
    assert "unverified" in notice.text
    assert "http://127.0.0.1:33418" in notice.text

    approved = consent(browser, authorize_url(client_id), workspace.id)
    code = parse_qs(urlsplit(approved["Location"]).query)["code"][0]
    token = exchange(client_id, code)
    assert token.status_code == 200, token.content
    assert DynamicClientRegistration.objects.get().first_used_at is not None

    # A remembered consent would skip the page for other clients (approval_prompt=auto);
    # not for this one.
    again = browser.get(authorize_url(client_id, approval_prompt="auto"))
    assert again.status_code == 200
    assert b"authorizationForm" in again.content


def test_manual_applications_get_no_unverified_notice(browser, api):
    app = api.post(
        "/api/v1/oauth-applications",
        {
            "name": "Notes",
            "client_type": "public",
            "grant_type": "authorization-code",
            "redirect_uris": [LOOPBACK],
        },
        format="json",
    ).json()["data"]
    page = browser.get(authorize_url(app["client_id"]))
    assert page.status_code == 200
    assert BeautifulSoup(page.content, "html.parser").find(id="unverified-client") is None


def test_a_private_use_scheme_client_gets_its_code(client, browser, workspace):
    uri = "com.example.notes:/oauth2redirect"
    client_id = register(client, {"redirect_uris": [uri]}).json()["client_id"]
    approved = consent(browser, authorize_url(client_id, redirect_uri=uri), workspace.id)
    assert approved.status_code == 302
    location = approved["Location"]
    assert location.startswith(uri + "?")
    code = parse_qs(urlsplit(location).query)["code"][0]
    assert exchange(client_id, code, redirect_uri=uri).status_code == 200


def test_a_client_asks_only_for_the_scopes_it_registered(client, browser):
    client_id = register(client, mcp_metadata(scope="conversations:read")).json()["client_id"]
    refused = browser.get(authorize_url(client_id, scope="write"))
    assert refused.status_code == 302
    assert parse_qs(urlsplit(refused["Location"]).query)["error"] == ["invalid_scope"]
    assert browser.get(authorize_url(client_id)).status_code == 200


def test_a_token_for_mcp_is_refused_by_the_rest_api(client, browser, workspace):
    client_id = register(client, mcp_metadata()).json()["client_id"]
    url = authorize_url(client_id, resource="http://testserver/mcp")
    code = parse_qs(urlsplit(consent(browser, url, workspace.id)["Location"]).query)["code"][0]
    token = exchange(client_id, code)
    assert token.status_code == 200, token.content
    access = token.json()["access_token"]
    assert AccessToken.objects.get().resource == ["http://testserver/mcp"]
    refused = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert refused.status_code == 401
    assert "another resource" in refused.json()["error"]["message"]
    # Nor does it open a WebSocket (no URL to match there: refused).
    with pytest.raises(AuthenticationFailed):
        authenticate_bearer(f"Bearer {access}")


def test_both_documents_name_the_registration_endpoint_on_the_public_issuer(client, settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OIDC_ISS_ENDPOINT": "https://agents.example.com",
    }
    discovery = client.get("/.well-known/openid-configuration").json()
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    expected = "https://agents.example.com/oauth/register/"
    assert discovery["registration_endpoint"] == metadata["registration_endpoint"] == expected


def test_operators_see_registrations_in_the_admin_and_can_delete_them(client, admin_client):
    register(client, mcp_metadata(), REMOTE_ADDR="203.0.113.9")
    registration = DynamicClientRegistration.objects.get()
    listing = admin_client.get("/admin/users/dynamicclientregistration/?used=no&q=Claude")
    assert listing.status_code == 200
    assert b"Claude Desktop" in listing.content
    assert b"203.0.113.9" in listing.content
    assert registration.application.client_id.encode() in listing.content
    assert (
        b"Claude Desktop"
        not in admin_client.get("/admin/users/dynamicclientregistration/?used=yes").content
    )
    detail = admin_client.get(f"/admin/users/dynamicclientregistration/{registration.pk}/change/")
    assert detail.status_code == 200
    assert LOOPBACK.encode() in detail.content
    deleted = admin_client.post(
        f"/admin/users/dynamicclientregistration/{registration.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert Application.objects.count() == 0
    assert DynamicClientRegistration.objects.count() == 0
