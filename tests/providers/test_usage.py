import csv
import datetime as dt
import io
from decimal import Decimal

import pytest

from apps.providers.models import UsageRecord
from apps.users.choices import Role
from tests.helpers import assert_error
from tests.providers.factories import ProviderFactory, ProviderModelFactory
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


def record(workspace, model, *, user=None, day=None, agent_id=None, api_key_id=None, **extra):
    row = UsageRecord.objects.create(
        workspace=workspace,
        user=user,
        agent_id=agent_id,
        api_key_id=api_key_id,
        model=model,
        model_name=model.name,
        provider_name=model.provider.name,
        kind=model.kind,
        outcome=extra.pop("outcome", "ok"),
        **extra,
    )
    if day is not None:
        UsageRecord.objects.filter(pk=row.pk).update(
            created_at=dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        )
    return row


@pytest.fixture
def usage_data(workspace, user):
    provider = ProviderFactory(workspace=workspace, name="acme")
    big = ProviderModelFactory(provider=provider, name="big")
    small = ProviderModelFactory(provider=provider, name="small")
    colleague = add_member(workspace=workspace, role=Role.MEMBER).user
    d1, d2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    record(
        workspace, big, user=user, day=d1, input_tokens=100, output_tokens=10, cost=Decimal("0.5")
    )
    record(
        workspace,
        big,
        user=colleague,
        day=d2,
        input_tokens=50,
        output_tokens=5,
        cost=Decimal("0.25"),
    )
    record(
        workspace,
        small,
        user=user,
        day=d2,
        input_tokens=7,
        output_tokens=0,
        cost=Decimal("0.01"),
        outcome="error",
        error_code="provider_timeout",
    )
    other_ws = UserFactory().memberships.get().workspace
    record(other_ws, big, day=d1, input_tokens=999, output_tokens=999, cost=Decimal("9"))
    return {"big": big, "small": small, "colleague": colleague}


def test_usage_totals_series_and_groups(api, usage_data):
    response = api.get("/api/v1/usage?group_by=model&start=2026-11-01&end=2026-11-02")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["totals"] == {
        "calls": 3,
        "failed": 1,
        "input_tokens": 157,
        "output_tokens": 15,
        "cost": "0.76000000",
    }
    assert [(d["date"], d["calls"], d["input_tokens"]) for d in data["series"]] == [
        ("2026-11-01", 1, 100),
        ("2026-11-02", 2, 57),
    ]
    assert [(g["label"], g["calls"], g["cost"]) for g in data["groups"]] == [
        ("acme/big", 2, "0.75000000"),
        ("acme/small", 1, "0.01000000"),
    ]


def test_usage_grouped_by_user_and_date_filter(api, user, usage_data):
    data = api.get("/api/v1/usage?group_by=user&start=2026-11-02").json()["data"]
    assert data["totals"]["calls"] == 2
    assert {(g["label"], g["calls"]) for g in data["groups"]} == {
        (user.email, 1),
        (usage_data["colleague"].email, 1),
    }


def test_members_see_only_their_own_usage(client_for, workspace, usage_data):
    client = client_for(usage_data["colleague"])
    data = client.get("/api/v1/usage", HTTP_X_WORKSPACE_ID=str(workspace.id)).json()["data"]
    assert (data["totals"]["calls"], data["totals"]["input_tokens"]) == (1, 50)


def test_usage_rejects_bad_parameters(api):
    assert_error(api.get("/api/v1/usage?group_by=planet"), 400, "validation_error")
    assert_error(api.get("/api/v1/usage?start=2026-11-05&end=2026-11-01"), 400, "validation_error")


def test_usage_csv_export(api, usage_data):
    response = api.get("/api/v1/usage/export?start=2026-11-01")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["created_at", "model", "provider"]
    assert rows[1][1:2] + rows[1][8:9] == ["big", "100"]  # oldest first
    assert sorted((r[1], r[8], r[13], r[14]) for r in rows[1:]) == [
        ("big", "100", "ok", ""),
        ("big", "50", "ok", ""),
        ("small", "7", "error", "provider_timeout"),
    ]


def test_usage_of_an_empty_workspace(api):
    data = api.get("/api/v1/usage").json()["data"]
    assert data == {
        "totals": {
            "calls": 0,
            "failed": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost": "0.00000000",
        },
        "series": [],
        "groups": [],
    }


def test_usage_groups_are_labelled_with_agent_and_model_names(api, workspace, user):
    from tests.agents.factories import make_agent

    provider = ProviderFactory(workspace=workspace, name="acme")
    big = ProviderModelFactory(provider=provider, name="big")
    gone = ProviderModelFactory(provider=provider, name="retired")
    agent = make_agent(workspace=workspace, user=user, name="Support bot")
    record(workspace, big, user=user, agent_id=agent.id, cost=Decimal("0.5"))
    record(workspace, gone, user=user, cost=Decimal("0.1"))
    gone.delete()  # its rows keep their model name

    by_agent = api.get("/api/v1/usage?group_by=agent").json()["data"]["groups"]
    assert [(g["key"], g["label"]) for g in by_agent] == [
        (str(agent.id), "Support bot"),
        (None, ""),
    ]
    by_model = api.get("/api/v1/usage?group_by=model").json()["data"]["groups"]
    assert [(g["key"], g["label"]) for g in by_model] == [
        (str(big.id), "acme/big"),
        (None, "acme/retired (deleted)"),
    ]


def test_usage_csv_export_under_asgi_streams_rows_in_batches(user, usage_data, monkeypatch):
    """Under ASGI the export is an async iterator reading batches of rows (a synchronous
    iterator would make Django warn and read every row into memory first)."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from apps.core.api import downloads

    monkeypatch.setattr(downloads, "ROWS_PER_CHUNK", 2)

    async def export() -> list[bytes]:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/api/v1/usage/export?start=2026-11-01")
        assert response.status_code == 200
        assert response.is_async
        return [part async for part in response]

    parts = async_to_sync(export)()
    assert len(parts) == 2  # header + 3 rows, 2 rows per batch
    rows = list(csv.reader(io.StringIO(b"".join(parts).decode())))
    assert rows[0][:3] == ["created_at", "model", "provider"]
    assert len(rows) == 4
