"""The knowledge_search tool the run engine offers to agents, executed as the engine does."""

import uuid

import pytest
from asgiref.sync import async_to_sync

from apps.core.tools import Citation, ToolContext, ToolSpec
from apps.knowledge.models import Chunk
from apps.knowledge.selectors import knowledge_tool_specs
from apps.providers.models import UsageRecord
from apps.providers.scripted import Reply
from tests.knowledge.factories import add_texts, make_kb

pytestmark = pytest.mark.django_db


@pytest.fixture
def kb(user, workspace, embedder, django_capture_on_commit_callbacks):
    kb = make_kb(
        user=user, workspace=workspace, name="Travel", description="Trip policies", top_k=2
    )
    with django_capture_on_commit_callbacks(execute=True):
        add_texts(
            user=user,
            kb=kb,
            texts={
                "visa.md": "Visa rules: a passport valid six months is required.",
                "meals.md": "Meal allowance is forty euros per day.",
                "hotels.md": "Hotels must be booked through the portal.",
            },
        )
    return kb


def _run(spec: ToolSpec, args, ctx):
    return async_to_sync(spec.execute)(args, ctx)


def test_tool_spec_describes_the_knowledge_bases(workspace, kb):
    (spec,) = knowledge_tool_specs(workspace_id=workspace.id, knowledge_base_ids=[kb.id])
    assert spec.name == "knowledge_search" and spec.source == "knowledge"
    assert "Travel: Trip policies" in spec.description
    assert spec.parameters["required"] == ["query"]
    assert spec.as_openai_function()["function"]["name"] == "knowledge_search"


def test_tool_returns_numbered_passages_and_their_citations(user, workspace, kb):
    (spec,) = knowledge_tool_specs(workspace_id=workspace.id, knowledge_base_ids=[kb.id])
    run_id = uuid.uuid4()
    ctx = ToolContext(workspace_id=workspace.id, user_id=user.id, run_id=run_id)
    result = _run(spec, {"query": "meal allowance per day"}, ctx)
    assert result.is_error is False
    meals = Chunk.objects.get(document__name="meals.md")
    first = result.citations[0]
    assert first == Citation(
        document_id=str(meals.document_id),
        document_name="meals.md",
        chunk_id=str(meals.id),
        snippet="Meal allowance is forty euros per day.",
        score=first.score,
        knowledge_base_id=str(kb.id),
        position=0,
    )
    assert len(result.citations) == 2  # the knowledge base's top_k
    assert result.content.startswith(
        "Passages from the knowledge bases, best first. Cite them as [n] in the answer.\n\n"
        f"[1] meals.md (passage 1, score {first.score:.3f})\nMeal allowance is forty euros per day."
    )
    assert f"[2] {result.citations[1].document_name}" in result.content
    # The query embedding is accounted to the run.
    assert UsageRecord.objects.filter(run_id=run_id).count() == 1


def test_tool_top_k_and_empty_results(user, workspace, kb):
    (spec,) = knowledge_tool_specs(workspace_id=workspace.id, knowledge_base_ids=[kb.id])
    ctx = ToolContext(workspace_id=workspace.id, user_id=user.id)
    assert len(_run(spec, {"query": "passport hotels meal", "top_k": 3}, ctx).citations) == 3
    # A hybrid hit found by one leg only scores at most 0.5: over the threshold, none.
    kb.score_threshold = 0.6
    kb.save()
    nothing = _run(spec, {"query": "zzzz"}, ToolContext(workspace_id=workspace.id, user_id=None))
    assert (nothing.content, nothing.citations) == (
        "No passage of the knowledge bases matches this query.",
        [],
    )
    assert _run(spec, {"query": "  "}, ctx).is_error is True


def test_tool_reports_provider_failures_as_tool_errors(user, workspace, kb, scripted_llm):
    (spec,) = knowledge_tool_specs(workspace_id=workspace.id, knowledge_base_ids=[kb.id])
    scripted_llm.push_embeddings(*[Reply(status=401)] * 3)
    result = _run(spec, {"query": "visa"}, ToolContext(workspace_id=workspace.id, user_id=user.id))
    assert result.is_error is True
    assert result.content.startswith("The search failed: ")
    assert result.citations == []


def test_no_tool_for_another_workspaces_knowledge_bases(kb):
    from tests.users.factories import UserFactory

    stranger = UserFactory().memberships.get().workspace
    assert knowledge_tool_specs(workspace_id=stranger.id, knowledge_base_ids=[kb.id]) == []
    assert knowledge_tool_specs(workspace_id=kb.workspace_id, knowledge_base_ids=[]) == []
