"""Defects the OpenAPI fuzzer found, each pinned by a test of its own (the fuzzer's
examples are few and random; these are exact)."""

import uuid

import pytest

from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", [[True], [{"a": 1}], [["x"]], [1.5]])
def test_non_string_tool_names_are_a_400_naming_the_item(api, value):
    response = api.post(
        "/api/v1/agents", {"name": "A", "tools_requiring_approval": value}, format="json"
    )
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"][0]["field"] == "tools_requiring_approval[0]"


@pytest.mark.parametrize("number", [2**63, 2**70, 10**30])
def test_ids_beyond_64_bits_are_a_json_404(api, number):
    response = api.delete(f"/api/v1/me/authorizations/{number}")
    assert_error(response, 404, "not_found")
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/conversations/{id}/stream",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/runs/{id}/stream",
    ],
)
def test_an_error_on_a_stream_endpoint_is_labelled_json(api, path):
    response = api.get(path.format(id=uuid.uuid4()), HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"].endswith("not_found")


def test_an_unpaginated_list_has_the_list_meta(api):
    response = api.get("/api/v1/model-defaults")
    assert response.status_code == 200
    meta = response.json()["meta"]
    assert (meta["has_more"], meta["next_cursor"]) == (False, None)


def test_api_key_revoke_answers_what_the_schema_declares(api, user, workspace):
    from drf_spectacular.generators import SchemaGenerator

    from tests.users.factories import make_api_key

    key, _ = make_api_key(user=user, workspace=workspace)
    response = api.delete(f"/api/v1/api-keys/{key.id}")
    schema = SchemaGenerator().get_schema(request=None, public=True)
    declared = schema["paths"]["/api/v1/api-keys/{api_key_id}"]["delete"]["responses"]
    assert str(response.status_code) in declared
    assert response.json()["data"]["id"] == str(key.id)
