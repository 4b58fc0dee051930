"""Rerank of retrieved passages by a provider's rerank model (a cross-encoder).

A search that reranks retrieves more passages than it returns (the candidates), sends
their text with the query to the rerank model, keeps the `top_k` best by the model's
relevance score and applies the score threshold to that score. When the rerank call
fails (after the runtime's retries and failover) the search answers with the retrieval
order and says why in its `RerankReport`: a reranker is an improvement, never a reason
for a search to fail.

Which model: the request's `rerank_model_id`, else the knowledge base's `rerank_model`
(the first of the searched knowledge bases that has one), else, when the request asks for
rerank (`rerank=True`), the workspace's default rerank model. `rerank=False` turns it off.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from apps.core.exceptions import ValidationFailed
from apps.knowledge.models import KnowledgeBase
from apps.knowledge.search import SearchHit
from apps.providers.choices import ModelKind
from apps.providers.exceptions import (
    ModelNotFoundError,
    NoModelConfigured,
    ProviderDisabled,
    ProviderError,
)
from apps.providers.selectors import usable_model
from apps.providers.services import model_info, rerank
from apps.providers.types import UsageContext

MIN_CANDIDATES = 20
MAX_CANDIDATES = 100


def candidate_count(*, top_k: int, configured: int | None) -> int:
    """How many retrieved passages go to the reranker: `configured` (the request's or the
    knowledge base's `rerank_candidates`), else max(4 x top_k, 20); never fewer than
    `top_k`, never more than 100."""
    wanted = configured or max(4 * top_k, MIN_CANDIDATES)
    return max(top_k, min(wanted, MAX_CANDIDATES))


def rerank_model_check(*, workspace_id: uuid.UUID, model_id: uuid.UUID, field: str) -> None:
    """`model_id` may rerank for the workspace: an enabled rerank model of its providers
    or the platform's. Raises ModelNotFoundError (404) for a model it cannot see,
    ValidationFailed (400) for another kind or a disabled model; both name `field`."""
    try:
        model = usable_model(workspace_id=workspace_id, model_id=model_id)
    except ModelNotFoundError as exc:
        raise ModelNotFoundError(field=field) from exc
    if model.kind != ModelKind.RERANK:
        raise ValidationFailed(
            f"{model.name} is a {model.kind} model, not a rerank model.", field=field
        )
    if not model.is_enabled or not model.provider.is_enabled:
        raise ValidationFailed(f"{model.provider.name}/{model.name} is disabled.", field=field)


@dataclass(frozen=True)
class RerankPlan:
    """How a search reranks: the model (None: the workspace default) and how many
    retrieved passages it reads."""

    model_id: uuid.UUID | None
    candidates: int


@dataclass(frozen=True)
class RerankReport:
    """What the rerank step did. `applied`: the hits are in the reranker's order and
    carry its scores; otherwise `error` is the code of the failure (None: there was
    nothing to rerank)."""

    applied: bool
    model_id: uuid.UUID | None
    candidates: int
    error: str | None = None


def rerank_plan(
    *,
    workspace_id: uuid.UUID,
    knowledge_bases: Sequence[KnowledgeBase],
    top_k: int,
    rerank: bool | None = None,
    model_id: uuid.UUID | None = None,
    candidates: int | None = None,
) -> RerankPlan | None:
    """Whether and how a search over `knowledge_bases` reranks (None: it does not).
    Checks what the request names: raises ValidationFailed for `rerank=False` with a
    model, like `rerank_model_check` for a bad model, and NoModelConfigured /
    ProviderDisabled (400, field `rerank`) for `rerank=True` with no usable model. A
    knowledge base's own model is not checked here: a failure there is reported by
    `rerank_hits`, the search still answers."""
    if rerank is False:
        if model_id is not None:
            raise ValidationFailed(
                "rerank_model_id needs rerank on (true or omitted).", field="rerank_model_id"
            )
        return None
    configured = next((kb for kb in knowledge_bases if kb.rerank_model_id is not None), None)
    if model_id is not None:
        rerank_model_check(workspace_id=workspace_id, model_id=model_id, field="rerank_model_id")
        chosen: uuid.UUID | None = model_id
    elif configured is not None:
        chosen = configured.rerank_model_id
    elif rerank:
        try:
            chosen = model_info(workspace_id=workspace_id, model_id=None, kind=ModelKind.RERANK).id
        except (NoModelConfigured, ProviderDisabled) as exc:
            raise type(exc)(exc.message, field="rerank") from exc
    else:
        return None
    if candidates is None and configured is not None:
        candidates = configured.rerank_candidates
    return RerankPlan(
        model_id=chosen, candidates=candidate_count(top_k=top_k, configured=candidates)
    )


def rerank_hits(
    *,
    plan: RerankPlan,
    workspace_id: uuid.UUID,
    query: str,
    hits: Sequence[SearchHit],
    top_k: int,
    threshold: float,
    usage: UsageContext,
) -> tuple[list[SearchHit], RerankReport]:
    """The `top_k` best of `hits` (the retrieved candidates, best first) by the rerank
    model, each with its `rerank_score`; a positive `threshold` drops hits whose rerank
    score is below it. When the rerank call fails: the retrieval order, `threshold`
    applied to the retrieval score, and a report with the error code. Never raises a
    ProviderError."""
    if not hits:
        return [], RerankReport(applied=False, model_id=plan.model_id, candidates=0)
    try:
        results = rerank(
            workspace_id=workspace_id,
            model_id=plan.model_id,
            query=query,
            documents=[hit.content for hit in hits],
            top_n=top_k,
            usage=usage,
        )
    except ProviderError as error:
        kept = [hit for hit in hits if hit.score >= threshold][:top_k]
        return kept, RerankReport(
            applied=False, model_id=plan.model_id, candidates=len(hits), error=error.code
        )
    ranked = [
        dataclasses.replace(hits[result.index], rerank_score=result.score)
        for result in results
        # Some rerankers answer raw logits (negative scores): no threshold, no filter.
        if threshold <= 0 or result.score >= threshold
    ]
    return ranked[:top_k], RerankReport(applied=True, model_id=plan.model_id, candidates=len(hits))
