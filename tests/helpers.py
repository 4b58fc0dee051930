"""Assertions every API test reuses."""

from collections.abc import Callable
from typing import Any

from django.db import models
from django.forms.models import model_to_dict
from rest_framework.test import APIClient


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope with this status and code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error", "meta"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["meta"]["request_id"] == response["X-Request-ID"]
    return body


def _snapshot_of(obj: models.Model) -> Callable[[], Any]:
    model = type(obj)

    def snapshot() -> Any:
        row = model._default_manager.filter(pk=obj.pk).first()
        return (model._default_manager.count(), model_to_dict(row) if row else None)

    return snapshot


def assert_outsiders_get_404(
    *,
    method: str,
    url: str,
    outsider: APIClient,
    obj: models.Model | None = None,
    data: Any = None,
    snapshot: Callable[[], Any] | None = None,
) -> None:
    """A member of another workspace gets 404 and an anonymous client 401, and nothing
    changes (the object's row and its table's row count, or a custom snapshot)."""
    take = snapshot or (_snapshot_of(obj) if obj is not None else (lambda: None))
    before = take()
    call = getattr(outsider, method.lower())
    response = call(url, data, format="json") if data is not None else call(url)
    assert response.status_code == 404, (method, url, response.status_code, response.content)
    assert response.json()["error"]["code"].endswith("not_found")
    anonymous = APIClient()
    call = getattr(anonymous, method.lower())
    response = call(url, data, format="json") if data is not None else call(url)
    assert_error(response, 401, "unauthorized")
    assert take() == before, "an outsider's request changed data"
