"""The fast request path (issue 19): same bytes as before, fewer queries, no GC tail.

- the orjson envelope renderer writes what DRF's JSON renderer wrote;
- serializer plans (apps.core.api.fast) output what the serializers output;
- list endpoints cost the same number of queries for 5 and for 50 rows, with a session
  and with an API key (whose key, user, workspace and role are one query);
- the start-up freeze takes the loaded objects out of the collector's reach;
- a rate-limit hit on Redis is one round trip.
"""

import datetime as dt
import decimal
import gc
import json
import uuid

import pytest
from django.conf import settings
from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient
from rest_framework.utils.serializer_helpers import ReturnDict

from apps.agents.api.serializers import AgentSerializer
from apps.agents.selectors import agent_list, agents_reference_ids
from apps.core.api.envelope import Enveloped
from apps.core.api.fast import serialize_row, serialize_rows, values_rows
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.core.startup import GC_THRESHOLDS, freeze_startup_objects
from apps.knowledge.api.serializers import KnowledgeBaseSerializer
from apps.knowledge.selectors import knowledge_base_list
from tests.agents.factories import (
    actor_for,
    make_agent,
    make_knowledge_base,
    make_skill_version,
    make_tool,
)
from tests.users.factories import make_api_key

# --- the renderer -------------------------------------------------------------------


class _Request:
    request_id = "req_1"


def _drf_bytes(body):
    return JSONRenderer().render(body)


@pytest.mark.parametrize(
    "data",
    [
        {"a": 1, "b": [1, 2.5, None, True], "c": "plain"},
        {"when": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)},
        {"when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        {"day": dt.date(2026, 1, 2), "time": dt.time(3, 4, 5, 600000)},
        {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        {"text": "héllo — 世界 🙂 \u2028 line \u2029 para", "esc": 'quote " back \\ \n tab \t'},
        {"money": decimal.Decimal("12.50"), "lazy": gettext_lazy("Not found.")},
        {"nested": ReturnDict({"x": [ReturnDict({"y": 1}, serializer=None)]}, serializer=None)},
        {"tuple": (1, 2), "big": 2**70},
        ["a", {"b": []}],
        None,
        0.1,
    ],
)
def test_envelope_renderer_writes_the_bytes_drf_wrote(data):
    context = {"request": _Request()}
    meta = {"request_id": "req_1"}
    if isinstance(data, list):  # an unpaginated list is one complete page
        meta |= {"has_more": False, "next_cursor": None}
    expected = _drf_bytes({"data": data, "meta": meta})
    assert EnvelopeJSONRenderer().render(data, "application/json", context) == expected


def test_envelope_renderer_keeps_envelopes_and_list_meta():
    context = {"request": _Request()}
    page = Enveloped({"data": [1], "meta": {"has_more": False, "next_cursor": None}})
    out = EnvelopeJSONRenderer().render(page, "application/json", context)
    assert out == _drf_bytes(
        {"data": [1], "meta": {"request_id": "req_1", "has_more": False, "next_cursor": None}}
    )
    indented = EnvelopeJSONRenderer().render({"a": 1}, "application/json; indent=2", context)
    assert (
        indented
        == json.dumps({"data": {"a": 1}, "meta": {"request_id": "req_1"}}, indent=2).encode()
    )


# --- serializer plans ---------------------------------------------------------------


@pytest.fixture
def agents(user, workspace):
    tool = make_tool(workspace=workspace)
    kb = make_knowledge_base(workspace=workspace)
    skill_version = make_skill_version(workspace=workspace)
    helper = make_agent(workspace=workspace, name="Helper")
    make_agent(
        workspace=workspace,
        name="Full",
        description="Ünïcode description",
        temperature=0.7,
        max_tokens=500,
        tool_ids=[tool.id],
        knowledge_base_ids=[kb.id],
        skill_version_ids=[skill_version.id],
        subagent_ids=[helper.id],
        builtin_tools=["web_search"],
        starter_questions=["Why?"],
        tools_requiring_approval=["lookup"],
    )
    return list(agent_list(actor=actor_for(user=user, workspace=workspace)))


def test_agent_plan_outputs_what_the_serializer_outputs(agents, user, workspace):
    actor = actor_for(user=user, workspace=workspace)
    expected = AgentSerializer(agents, many=True, context={"actor": actor}).data
    references = agents_reference_ids(agent_ids=[a.pk for a in agents])
    fast = serialize_rows(
        AgentSerializer, agents, context={"actor": actor, "references": references}
    )
    assert _drf_bytes(fast) == _drf_bytes(expected)
    # The list endpoint reads `.values()` rows, not instances: the same output.
    rows = list(values_rows(agent_list(actor=actor).select_related(None)))
    assert [row.pk for row in rows] == [agent.pk for agent in agents]
    from_rows = serialize_rows(
        AgentSerializer, rows, context={"actor": actor, "references": references}
    )
    assert _drf_bytes(from_rows) == _drf_bytes(expected)
    full = next(row for row in fast if row["name"] == "Full")
    assert len(full["tool_ids"]) == len(full["subagent_ids"]) == 1
    assert full["created_at"].endswith("Z")


def test_knowledge_base_plan_outputs_what_the_serializer_outputs(user, workspace):
    make_knowledge_base(workspace=workspace, name="A")
    make_knowledge_base(workspace=workspace, name="B")
    rows = list(knowledge_base_list(actor=actor_for(user=user, workspace=workspace)))
    expected = KnowledgeBaseSerializer(rows, many=True).data
    assert _drf_bytes(serialize_rows(KnowledgeBaseSerializer, rows)) == _drf_bytes(expected)
    values = list(values_rows(knowledge_base_list(actor=actor_for(user=user, workspace=workspace))))
    assert _drf_bytes(serialize_rows(KnowledgeBaseSerializer, values)) == _drf_bytes(expected)


@pytest.mark.parametrize(
    "rerank",
    [None, {"applied": True, "model_id": str(uuid.uuid4()), "candidates": 20, "error": None}],
)
def test_nested_plans_output_what_the_search_result_serializer_outputs(rerank):
    from apps.knowledge.api.serializers import SearchResultSerializer
    from apps.knowledge.choices import SearchMode

    def hit(position, rerank_score):
        return {
            "chunk_id": uuid.uuid4(),
            "document_id": uuid.uuid4(),
            "document_name": "Ünïcode.pdf",
            "knowledge_base_id": uuid.uuid4(),
            "position": position,
            "content": "some text \u2028 with a separator",
            "score": 0.1 * position,
            "metadata": {"page": position, "tags": ["a", None]},
            "rerank_score": rerank_score,
        }

    result = {
        "query": "what is it",
        "mode": SearchMode.HYBRID,
        "hits": [hit(1, None), hit(2, 0.75)],
        "rerank": rerank,
    }
    expected = SearchResultSerializer(result).data
    fast = serialize_row(SearchResultSerializer, result)
    assert _drf_bytes(fast) == _drf_bytes(expected)
    assert fast["hits"][1]["rerank_score"] == 0.75 and (fast["rerank"] is None) == (rerank is None)
    empty = {**result, "hits": []}
    assert _drf_bytes(serialize_row(SearchResultSerializer, empty)) == _drf_bytes(
        SearchResultSerializer(empty).data
    )


@pytest.mark.parametrize(
    "body",
    [
        {"query": "q"},
        {"query": "q", "top_k": 5, "mode": "fulltext", "threshold": 0.5, "rerank": False},
        {"query": "q", "filters": {"document_ids": [str(uuid.uuid4())], "metadata": {"a": 1}}},
        {"query": "", "top_k": 0},
        {"top_k": "many", "mode": "psychic", "threshold": 2},
        {"query": "q", "filters": {"document_ids": ["not-a-uuid"]}},
        {"query": "x" * 4001, "rerank_model_id": "nope"},
        [],
    ],
)
def test_validated_input_gives_what_the_serializer_gives(body):
    from rest_framework.exceptions import ValidationError

    from apps.core.api.fast import validated_input
    from apps.knowledge.api.serializers import SearchSerializer

    serializer = SearchSerializer(data=body)
    if serializer.is_valid():
        for _ in range(2):  # the second call reuses the fields built by the first
            assert validated_input(SearchSerializer, body) == serializer.validated_data
        return
    for _ in range(2):
        with pytest.raises(ValidationError) as raised:
            validated_input(SearchSerializer, body)
        assert raised.value.detail == serializer.errors


# --- constant query counts ----------------------------------------------------------


def _seed(workspace, n):
    tool = make_tool(workspace=workspace)
    for i in range(n):
        make_agent(workspace=workspace, name=f"Agent {i}", tool_ids=[tool.id])
        make_knowledge_base(workspace=workspace, name=f"KB {i}")


@pytest.mark.parametrize("rows", [5, 50])
def test_lists_cost_the_same_queries_for_5_and_50_rows(
    rows, api, user, workspace, django_assert_num_queries
):
    _seed(workspace, rows)
    _, secret = make_api_key(user=user, workspace=workspace)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    keyed.get("/api/v1/agents?limit=1")  # the key's last_used_at write, once a minute

    # session, user, actor (membership), page, references of the page
    with django_assert_num_queries(5):
        body = api.get(f"/api/v1/agents?limit={rows}").json()
    assert len(body["data"]) == rows
    # key + user + workspace + role in one query, page, references
    with django_assert_num_queries(3):
        body = keyed.get(f"/api/v1/agents?limit={rows}").json()
    assert len(body["data"]) == rows and body["data"][0]["tool_ids"]
    # key, page (document counts in it)
    with django_assert_num_queries(2):
        body = keyed.get(f"/api/v1/knowledge-bases?limit={rows}").json()
    assert len(body["data"]) == rows


def test_detail_reads_the_knowledge_base_and_its_count_in_one_query(
    user, workspace, django_assert_num_queries
):
    kb = make_knowledge_base(workspace=workspace)
    _, secret = make_api_key(user=user, workspace=workspace)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    keyed.get("/api/v1/agents?limit=1")
    with django_assert_num_queries(2):
        body = keyed.get(f"/api/v1/knowledge-bases/{kb.id}").json()
    assert body["data"]["document_count"] == 0


def test_a_key_of_a_removed_member_is_refused(user, workspace):
    from apps.users.models import Membership

    _, secret = make_api_key(user=user, workspace=workspace)
    keyed = APIClient()
    keyed.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert keyed.get("/api/v1/agents").status_code == 200
    Membership.objects.filter(user=user, workspace=workspace).delete()
    assert keyed.get("/api/v1/agents").status_code == 401


# --- statements compiled once per process -------------------------------------------


def _fields(obj):
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_the_prepared_key_lookup_returns_what_the_queryset_returns(
    user, workspace, django_assert_num_queries
):
    from apps.users.models import Membership, WorkspaceSecurity
    from apps.users.selectors import _API_KEY_BY_HASH, _api_key_by_hash, api_key_hash

    WorkspaceSecurity.objects.get_or_create(workspace=workspace)
    _, secret = make_api_key(user=user, workspace=workspace, scopes=("read",))
    digest = api_key_hash(secret)
    expected = _api_key_by_hash(digest).first()
    for _ in range(2):  # compiled by the first call, reused by the second
        with django_assert_num_queries(1):
            key = _API_KEY_BY_HASH.first(key_hash=digest)
        assert key is not None and _fields(key) == _fields(expected)
        assert key.scopes == ["read"] and key.member_role == expected.member_role == "owner"
        assert _fields(key.user) == _fields(expected.user)
        assert _fields(key.workspace) == _fields(expected.workspace)
        assert _fields(key.workspace.security) == _fields(expected.workspace.security)
        assert key._state.adding is False and key._state.db == "default"
    assert _API_KEY_BY_HASH.first(key_hash=api_key_hash("ak_unknown")) is None
    Membership.objects.filter(user=user, workspace=workspace).delete()
    assert _API_KEY_BY_HASH.first(key_hash=digest).member_role is None


def test_the_prepared_knowledge_base_lookup_stays_in_the_workspace(user, workspace):
    from apps.knowledge.exceptions import KnowledgeBaseNotFound
    from apps.knowledge.models import Document
    from apps.knowledge.selectors import access_knowledge_base
    from tests.users.factories import UserFactory

    kb = make_knowledge_base(workspace=workspace)
    Document.objects.create(knowledge_base=kb, name="a.txt", source="text", kind="text")
    actor = actor_for(user=user, workspace=workspace)
    found = access_knowledge_base(actor=actor, knowledge_base_id=kb.id, with_document_count=True)
    assert found.document_count == 1 and _fields(found) == _fields(kb)
    plain = access_knowledge_base(actor=actor, knowledge_base_id=kb.id)
    assert not hasattr(plain, "document_count") and plain.pk == kb.pk
    other_user = UserFactory(email="bob@example.com")
    other_workspace = other_user.memberships.get(workspace__is_personal=True).workspace
    other = actor_for(user=other_user, workspace=other_workspace)
    for with_count in (True, False):
        with pytest.raises(KnowledgeBaseNotFound):
            access_knowledge_base(
                actor=other, knowledge_base_id=kb.id, with_document_count=with_count
            )


# --- garbage collection -------------------------------------------------------------


def test_startup_freeze_moves_loaded_objects_out_of_collections_and_collects_less_often():
    thresholds = gc.get_threshold()
    try:
        frozen = freeze_startup_objects()
        # Not an exact count: another test's server thread may freeze again meanwhile, and
        # a frozen object freed since (its count falls by one) leaves the permanent set.
        assert frozen > 10_000
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


# --- rate limits on Redis -----------------------------------------------------------


@pytest.mark.skipif(not settings.REDIS_URL, reason="the production profile's Redis cache")
def test_a_rate_limit_hit_is_one_redis_round_trip_on_a_shared_client(monkeypatch):
    from apps.core.api import ratelimit

    client = ratelimit._redis_client()
    assert client is ratelimit._redis_client()  # one client per process
    executed = []
    real_pipeline = client.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a, **k):
            executed.append(len(pipe.command_stack))
            return real_execute(*a, **k)

        pipe.execute = execute
        return pipe

    monkeypatch.setattr(client, "pipeline", counting_pipeline)
    ident = uuid.uuid4().hex
    first = ratelimit.rate_hit(kind="api_key", ident=ident)
    second = ratelimit.rate_hit(kind="api_key", ident=ident)
    assert executed == [2, 2]  # SET NX EX + INCR, sent together
    assert second.remaining == first.remaining - 1
    keys = client.keys(f"*ratelimit:api_key:{ident}:*")
    assert len(keys) == 1 and 0 < client.ttl(keys[0]) <= 61
