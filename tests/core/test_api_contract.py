import uuid

import pytest
from django.test import override_settings

from apps.users.models import Workspace
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_malformed_json_is_bad_request_envelope(api):
    response = api.post("/api/v1/workspaces", data="{not json", content_type="application/json")
    body = assert_error(response, 400, "bad_request")
    assert "JSON" in body["error"]["message"]


def test_unknown_route_is_not_found_envelope(api):
    response = api.get("/api/v1/no-such-thing")
    assert_error(response, 404, "not_found")
    assert response["X-RateLimit-Limit"]


def test_wrong_method_is_method_not_allowed(api):
    response = api.put("/api/v1/workspaces", {}, format="json")
    assert_error(response, 405, "method_not_allowed")


@override_settings(API_MAX_BODY_BYTES=1000)
def test_oversized_body_is_payload_too_large_and_nothing_created(api):
    before = Workspace.objects.count()
    response = api.post("/api/v1/workspaces", {"name": "x" * 2000}, format="json")
    assert_error(response, 413, "payload_too_large")
    assert Workspace.objects.count() == before


def test_validation_error_names_the_field(api):
    response = api.post("/api/v1/workspaces", {"name": ""}, format="json")
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"] == [
        {"field": "name", "message": "This field may not be blank."}
    ]


def test_missing_credentials_is_unauthorized(anon):
    response = anon.get("/api/v1/workspaces")
    assert_error(response, 401, "unauthorized")
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", resource_metadata='
        '"http://testserver/.well-known/oauth-protected-resource/api/v1"'
    )


def test_non_admin_gets_forbidden_on_system_settings(api):
    assert_error(
        api.patch("/api/v1/system/settings", {"allow_registration": False}, format="json"),
        403,
        "forbidden",
    )


@pytest.mark.urls("tests.core.urls_errors")
def test_unexpected_error_is_internal_error_without_trace(api, caplog):
    response = api.get("/api/v1/explode")
    body = assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.content.decode()
    assert body["error"]["message"] == "An internal error occurred."
    assert "secret internal detail" in caplog.text  # logged for the operator


def test_success_envelope_and_request_id_echo(api):
    response = api.get("/api/v1/system/info", HTTP_X_REQUEST_ID="abc-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc-123"
    body = response.json()
    assert body["meta"] == {"request_id": "abc-123"}
    assert body["data"]["allow_registration"] is True
    assert body["data"]["database"] in {"sqlite", "postgresql"}


def test_malformed_request_id_is_replaced(api):
    response = api.get("/api/v1/system/info", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"].startswith("req_")
    assert response.json()["meta"]["request_id"] == response["X-Request-ID"]


def test_request_id_reaches_log_lines(api, caplog):
    from apps.core.logging import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())
    api.get("/api/v1/no-such-thing", HTTP_X_REQUEST_ID="trace-me-42")
    # Django logs the 404 with our filter attaching the id.
    assert any(getattr(r, "request_id", None) == "trace-me-42" for r in caplog.records)


class TestIdempotency:
    def test_same_key_and_body_replays_the_stored_response(self, api):
        headers = {"HTTP_IDEMPOTENCY_KEY": "key-1"}
        first = api.post("/api/v1/workspaces", {"name": "Team"}, format="json", **headers)
        second = api.post("/api/v1/workspaces", {"name": "Team"}, format="json", **headers)
        assert first.status_code == second.status_code == 201
        assert second["Idempotent-Replayed"] == "true"
        assert second.json()["data"] == first.json()["data"]
        assert second.json()["meta"]["request_id"] != first.json()["meta"]["request_id"]
        assert Workspace.objects.filter(name="Team").count() == 1

    def test_same_key_with_another_body_is_conflict(self, api):
        headers = {"HTTP_IDEMPOTENCY_KEY": "key-2"}
        api.post("/api/v1/workspaces", {"name": "Team"}, format="json", **headers)
        response = api.post("/api/v1/workspaces", {"name": "Other"}, format="json", **headers)
        assert_error(response, 409, "idempotency_key_reused")
        assert not Workspace.objects.filter(name="Other").exists()

    def test_keys_are_per_credential(self, api, outsider):
        headers = {"HTTP_IDEMPOTENCY_KEY": "shared"}
        api.post("/api/v1/workspaces", {"name": "Team"}, format="json", **headers)
        response = outsider.post("/api/v1/workspaces", {"name": "Team"}, format="json", **headers)
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response
        assert Workspace.objects.filter(name="Team").count() == 2

    def test_failed_request_releases_the_key(self, api):
        headers = {"HTTP_IDEMPOTENCY_KEY": "key-3"}
        assert (
            api.post("/api/v1/workspaces", {"name": ""}, format="json", **headers).status_code
            == 400
        )
        response = api.post("/api/v1/workspaces", {"name": "Fixed"}, format="json", **headers)
        assert response.status_code == 201


class TestRateLimits:
    def test_headers_on_every_response(self, api):
        response = api.get("/api/v1/workspaces")
        assert response["X-RateLimit-Limit"] == "600"
        assert response["X-RateLimit-Remaining"] == "599"
        assert int(response["X-RateLimit-Reset"]) > 0

    @override_settings(
        RATE_LIMITS={"anon": "60/min", "user": "3/min", "api_key": "3/min", "oauth2": "3/min"}
    )
    def test_past_the_limit_is_429_with_retry_after(self, api, outsider):
        for remaining in (2, 1, 0):
            assert api.get("/api/v1/workspaces")["X-RateLimit-Remaining"] == str(remaining)
        response = api.get("/api/v1/workspaces")
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response["Retry-After"]) <= 60
        assert response["X-RateLimit-Remaining"] == "0"
        # Another credential has its own budget.
        assert outsider.get("/api/v1/workspaces").status_code == 200

    @override_settings(
        RATE_LIMITS={"anon": "2/min", "user": "600/min", "api_key": "600/min", "oauth2": "600/min"}
    )
    def test_anonymous_clients_are_limited_per_address(self, anon):
        anon.get("/api/v1/system/info")
        anon.get("/api/v1/system/info")
        assert_error(anon.get("/api/v1/system/info"), 429, "rate_limited")


class TestPagination:
    @pytest.fixture
    def many_workspaces(self, user):
        from apps.users.services import workspace_create

        return [workspace_create(user=user, name=f"ws{i}") for i in range(5)]

    def test_cursor_walks_every_item_once(self, api, many_workspaces):
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            body = api.get("/api/v1/workspaces", params).json()
            seen += [w["id"] for w in body["data"]]
            assert body["meta"]["has_more"] == (body["meta"]["next_cursor"] is not None)
            if not body["meta"]["has_more"]:
                break
            cursor = body["meta"]["next_cursor"]
        assert len(seen) == len(set(seen)) == 6  # five + the personal workspace

    @pytest.mark.parametrize("limit", ["0", "101", "abc", "-1"])
    def test_invalid_limit_is_a_validation_error(self, api, limit):
        body = assert_error(
            api.get("/api/v1/workspaces", {"limit": limit}), 400, "validation_error"
        )
        assert body["error"]["details"][0]["field"] == "limit"

    def test_invalid_cursor_is_rejected(self, api):
        assert_error(api.get("/api/v1/workspaces", {"cursor": "!!garbage"}), 400, "invalid_cursor")


class TestSystemSettings:
    @pytest.fixture
    def admin_api(self, client_for):
        from tests.users.factories import UserFactory

        return client_for(UserFactory(email="root@example.com", is_staff=True))

    def test_admin_closes_registration_and_info_reports_it(self, admin_api, anon):
        response = admin_api.patch(
            "/api/v1/system/settings", {"allow_registration": False}, format="json"
        )
        assert response.status_code == 200
        assert response.json()["data"]["allow_registration"] is False
        assert anon.get("/api/v1/system/info").json()["data"]["allow_registration"] is False

    def test_invalid_allowlist_entry_names_the_field(self, admin_api):
        response = admin_api.patch(
            "/api/v1/system/settings", {"outbound_allowed_hosts": ["not a host!"]}, format="json"
        )
        body = assert_error(response, 400, "validation_error")
        assert body["error"]["details"][0]["field"] == "outbound_allowed_hosts"

    def test_workspace_header_with_garbage_is_404(self, api):
        response = api.get("/api/v1/workspaces", HTTP_X_WORKSPACE_ID=str(uuid.uuid4()))
        assert_error(response, 404, "workspace_not_found")


def test_nested_list_errors_are_named_with_indexes():
    from apps.core.api.errors import flatten_validation

    detail = {"tags": {1: ["Not a valid string."]}, "items": [{}, {"name": ["Required."]}]}
    assert flatten_validation(detail) == [
        {"field": "tags[1]", "message": "Not a valid string."},
        {"field": "items[1].name", "message": "Required."},
    ]
