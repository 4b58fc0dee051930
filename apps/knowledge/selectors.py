"""Reads of knowledge bases, documents and chunks; retrieval; the knowledge_search tool."""

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Count, Q, QuerySet

from apps.core.prepared import PreparedQuery
from apps.core.tools import ToolContext, ToolResult, ToolSpec
from apps.knowledge.choices import ACTIVE_STATUSES, DocumentStatus, SearchMode
from apps.knowledge.embedding import embed_batches, embedding_model_resolve
from apps.knowledge.exceptions import (
    BatchNotFound,
    ChunkNotFound,
    DocumentNotFound,
    EmbeddingUnavailable,
    KnowledgeBaseNotFound,
)
from apps.knowledge.limits import limit
from apps.knowledge.models import Chunk, Document, KnowledgeBase, UploadBatch
from apps.knowledge.rerank import RerankReport, rerank_hits, rerank_plan
from apps.knowledge.search import (
    Filters,
    Scored,
    SearchHit,
    fulltext_search,
    passages_load,
    reciprocal_rank_fusion,
    vector_search,
)
from apps.providers.exceptions import ProviderError
from apps.providers.types import UsageContext
from apps.users.actors import Actor

# --- access ---------------------------------------------------------------------------


def knowledge_base_list(*, actor: Actor) -> QuerySet[KnowledgeBase]:
    """Knowledge bases of the actor's workspace, with their document counts."""
    return KnowledgeBase.objects.filter(workspace_id=actor.workspace_id).annotate(
        document_count=Count("documents")
    )


def _knowledge_base_in_workspace(
    workspace_id: uuid.UUID, knowledge_base_id: uuid.UUID
) -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.filter(workspace_id=workspace_id, id=knowledge_base_id)


def _knowledge_base_with_count(
    workspace_id: uuid.UUID, knowledge_base_id: uuid.UUID
) -> QuerySet[KnowledgeBase]:
    return _knowledge_base_in_workspace(workspace_id, knowledge_base_id).annotate(
        document_count=Count("documents")
    )


# Compiled once per process (apps.core.prepared): every knowledge base request looks one up.
_KB_FIELDS: dict[str, Any] = {
    "workspace_id": KnowledgeBase._meta.get_field("workspace"),
    "knowledge_base_id": KnowledgeBase._meta.get_field("id"),
}
_KNOWLEDGE_BASE = PreparedQuery(_knowledge_base_in_workspace, **_KB_FIELDS)
_KNOWLEDGE_BASE_WITH_COUNT = PreparedQuery(_knowledge_base_with_count, **_KB_FIELDS)


def access_knowledge_base(
    *, actor: Actor, knowledge_base_id: uuid.UUID, with_document_count: bool = False
) -> KnowledgeBase:
    """A knowledge base of the actor's workspace (annotated with `document_count` when
    asked: same query). Raises KnowledgeBaseNotFound."""
    prepared = _KNOWLEDGE_BASE_WITH_COUNT if with_document_count else _KNOWLEDGE_BASE
    found = prepared.first(workspace_id=actor.workspace_id, knowledge_base_id=knowledge_base_id)
    if found is None:
        raise KnowledgeBaseNotFound()
    return found


def document_list(
    *, knowledge_base: KnowledgeBase, status: str | None = None, batch_id: uuid.UUID | None = None
) -> QuerySet[Document]:
    """Documents of a knowledge base, optionally of one status or upload batch."""
    qs = Document.objects.filter(knowledge_base=knowledge_base)
    if status:
        qs = qs.filter(status=status)
    if batch_id:
        qs = qs.filter(batch_id=batch_id)
    return qs


def access_document(
    *, actor: Actor, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
) -> Document:
    """A document of one of the actor's knowledge bases. Raises DocumentNotFound."""
    found = (
        Document.objects.select_related("knowledge_base")
        .filter(
            id=document_id,
            knowledge_base_id=knowledge_base_id,
            knowledge_base__workspace_id=actor.workspace_id,
        )
        .first()
    )
    if found is None:
        raise DocumentNotFound()
    return found


def access_batch(*, actor: Actor, knowledge_base_id: uuid.UUID, batch_id: uuid.UUID) -> UploadBatch:
    """An upload batch of one of the actor's knowledge bases. Raises BatchNotFound."""
    found = UploadBatch.objects.filter(
        id=batch_id,
        knowledge_base_id=knowledge_base_id,
        knowledge_base__workspace_id=actor.workspace_id,
    ).first()
    if found is None:
        raise BatchNotFound()
    return found


@dataclass(frozen=True)
class BatchProgress:
    total: int
    success: int
    fail: int
    in_progress: int
    waiting: int

    @property
    def ratio(self) -> float:
        """Share of documents that reached a terminal state."""
        return round((self.success + self.fail) / self.total, 4) if self.total else 1.0


def batch_progress(*, batch: UploadBatch) -> BatchProgress:
    """Counts of the batch's documents by state."""
    counts = Document.objects.filter(batch=batch).aggregate(
        total=Count("id"),
        success=Count("id", filter=Q(status=DocumentStatus.INDEXED)),
        fail=Count("id", filter=Q(status=DocumentStatus.FAILED)),
        in_progress=Count(
            "id", filter=Q(status__in=[DocumentStatus.PARSING, DocumentStatus.EMBEDDING])
        ),
        waiting=Count("id", filter=Q(status=DocumentStatus.WAITING)),
    )
    return BatchProgress(**counts)


def chunk_list(*, document: Document) -> QuerySet[Chunk]:
    """Passages of a document (embeddings deferred)."""
    return Chunk.objects.filter(document=document).defer("embedding")


def access_chunk(*, actor: Actor, knowledge_base_id: uuid.UUID, chunk_id: uuid.UUID) -> Chunk:
    """A passage of one of the actor's knowledge bases. Raises ChunkNotFound."""
    found = (
        Chunk.objects.select_related("knowledge_base", "document")
        .defer("embedding")
        .filter(
            id=chunk_id,
            knowledge_base_id=knowledge_base_id,
            knowledge_base__workspace_id=actor.workspace_id,
        )
        .first()
    )
    if found is None:
        raise ChunkNotFound()
    return found


def document_is_active(document: Document) -> bool:
    return document.status in ACTIVE_STATUSES


# --- retrieval ------------------------------------------------------------------------


class SearchHits(list[SearchHit]):
    """The hits of a search, best first, with what the rerank step did (None: no rerank
    was asked for or configured)."""

    def __init__(self, hits: Sequence[SearchHit] = (), rerank: RerankReport | None = None):
        super().__init__(hits)
        self.rerank = rerank


def _merge(lists: Sequence[Scored], top_k: int) -> Scored:
    merged = [hit for hits in lists for hit in hits]
    merged.sort(key=lambda item: (-item[1], str(item[0])))
    return merged[:top_k]


class _LruCache:
    """The last query embeddings of this process: agents and users repeat queries, and a
    model gives the same vector for the same text."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> list[float] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: list[float]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_QUERY_VECTORS = _LruCache(size=512)


def _vector_leg(
    *,
    knowledge_bases: Sequence[KnowledgeBase],
    query: str,
    top_k: int,
    filters: Filters,
    usage: UsageContext,
) -> Scored | None:
    """Vector hits of every knowledge base that has an embedding model (the query is
    embedded once per model), or None when none has one."""
    groups: dict[str, tuple[Any, list[KnowledgeBase]]] = {}
    for kb in knowledge_bases:
        model = embedding_model_resolve(knowledge_base=kb)
        if model is not None:
            groups.setdefault(model.key, (model, []))[1].append(kb)
    if not groups:
        return None
    results = []
    for key, (model, kbs) in groups.items():
        vector = _QUERY_VECTORS.get((key, query))
        if vector is None:
            vector = embed_batches(knowledge_base=kbs[0], model=model, texts=[query], usage=usage)[
                0
            ]
            _QUERY_VECTORS.put((key, query), vector)
        results.append(
            vector_search(
                kb_ids=[kb.id for kb in kbs],
                model_key=key,
                query=vector,
                top_k=top_k,
                filters=filters,
            )
        )
    return _merge(results, top_k)


def _fulltext_leg(
    *, knowledge_bases: Sequence[KnowledgeBase], query: str, top_k: int, filters: Filters
) -> Scored:
    groups: dict[str, list[uuid.UUID]] = {}
    for kb in knowledge_bases:
        groups.setdefault(kb.language, []).append(kb.id)
    return _merge(
        [
            fulltext_search(kb_ids=ids, config=config, query=query, top_k=top_k, filters=filters)
            for config, ids in groups.items()
        ],
        top_k,
    )


def knowledge_search(
    *,
    workspace_id: uuid.UUID,
    knowledge_base_ids: Sequence[uuid.UUID],
    query: str,
    top_k: int | None = None,
    mode: str | None = None,
    threshold: float | None = None,
    filters: Filters | None = None,
    usage: UsageContext | None = None,
    rerank: bool | None = None,
    rerank_model_id: uuid.UUID | None = None,
    rerank_candidates: int | None = None,
    knowledge_bases: Sequence[KnowledgeBase] | None = None,
) -> SearchHits:
    """Ranked passages of the workspace's knowledge bases among `knowledge_base_ids`
    (others are ignored). Unset `top_k`, `mode`, `threshold` take the first knowledge
    base's settings. Hybrid fuses the vector and full-text rankings (RRF) and falls back
    to full-text when no embedding model is configured; vector mode then raises
    EmbeddingUnavailable. Provider errors (ProviderError) of retrieval propagate.
    Rerank (see apps.knowledge.rerank): `rerank` None follows the knowledge bases'
    `rerank_model`; the threshold then applies to the rerank score; a failed rerank
    leaves the retrieval order and is reported in `.rerank`, never raised.
    A caller that already holds the knowledge bases (the search view) passes them as
    `knowledge_bases` to save loading them again; those of other workspaces are ignored."""
    if knowledge_bases is None:
        knowledge_bases = list(
            KnowledgeBase.objects.filter(workspace_id=workspace_id, id__in=list(knowledge_base_ids))
        )
    else:
        wanted = set(knowledge_base_ids)
        knowledge_bases = [
            kb for kb in knowledge_bases if kb.workspace_id == workspace_id and kb.id in wanted
        ]
    if not knowledge_bases or not query.strip():
        return SearchHits()
    first = knowledge_bases[0]
    top_k = max(1, min(int(top_k or first.top_k), 100))
    mode = mode or first.search_mode
    threshold = first.score_threshold if threshold is None else threshold
    filters = filters or Filters()
    usage = usage or UsageContext(workspace_id=workspace_id)
    plan = rerank_plan(
        workspace_id=workspace_id,
        knowledge_bases=knowledge_bases,
        top_k=top_k,
        rerank=rerank,
        model_id=rerank_model_id,
        candidates=rerank_candidates,
    )
    if plan is not None:
        pool = knowledge_search(
            workspace_id=workspace_id,
            knowledge_base_ids=knowledge_base_ids,
            query=query,
            top_k=plan.candidates,
            mode=mode,
            threshold=0.0,
            filters=filters,
            usage=usage,
            rerank=False,
            knowledge_bases=knowledge_bases,
        )
        hits, report = rerank_hits(
            plan=plan,
            workspace_id=workspace_id,
            query=query,
            hits=pool,
            top_k=top_k,
            threshold=threshold,
            usage=usage,
        )
        return SearchHits(hits, rerank=report)
    if mode == SearchMode.FULLTEXT:
        ranked = _fulltext_leg(
            knowledge_bases=knowledge_bases, query=query, top_k=top_k, filters=filters
        )
    else:
        depth = top_k if mode == SearchMode.VECTOR else max(top_k * 4, 20)
        vector = _vector_leg(
            knowledge_bases=knowledge_bases,
            query=query,
            top_k=depth,
            filters=filters,
            usage=usage,
        )
        if mode == SearchMode.VECTOR:
            if vector is None:
                raise EmbeddingUnavailable()
            ranked = vector
        else:
            text = _fulltext_leg(
                knowledge_bases=knowledge_bases, query=query, top_k=depth, filters=filters
            )
            legs = [leg for leg in (vector, text) if leg is not None]
            ranked = reciprocal_rank_fusion(legs, k=int(limit("KNOWLEDGE_RRF_K")))[:top_k]
    ranked = [(chunk_id, score) for chunk_id, score in ranked if score >= threshold][:top_k]
    return SearchHits(hits_load(ranked=ranked))


def hits_load(*, ranked: Scored) -> list[SearchHit]:
    """The passages of `ranked` with their documents' names, in ranked order: one query
    (`search.passages_load`), no model instances."""
    if not ranked:
        return []
    rows = passages_load([chunk_id for chunk_id, _ in ranked])
    hits = []
    for chunk_id, score in ranked:
        row = rows.get(chunk_id)
        if row is None:
            continue  # deleted between the two queries
        hits.append(
            SearchHit(
                chunk_id=chunk_id,
                document_id=row.document_id,
                document_name=row.document_name,
                knowledge_base_id=row.knowledge_base_id,
                position=row.position,
                content=row.content,
                score=score,
                metadata=row.metadata,
            )
        )
    return hits


aknowledge_search = sync_to_async(knowledge_search, thread_sensitive=True)


def rerank_data(report: RerankReport) -> dict[str, Any]:
    """A RerankReport as JSON (the search API and the tool's result data)."""
    return {
        "applied": report.applied,
        "model_id": str(report.model_id) if report.model_id else None,
        "candidates": report.candidates,
        "error": report.error,
    }


# --- the agents' tool -----------------------------------------------------------------

KNOWLEDGE_TOOL_NAME = "knowledge_search"


def format_hits(hits: Sequence[SearchHit]) -> str:
    """The text the model reads: numbered passages it cites as [n]."""
    if not hits:
        return "No passage of the knowledge bases matches this query."
    parts = ["Passages from the knowledge bases, best first. Cite them as [n] in the answer."]
    for number, hit in enumerate(hits, start=1):
        parts.append(
            f"[{number}] {hit.document_name} (passage {hit.position + 1}, "
            f"score {hit.rank_score:.3f})\n{hit.content}"
        )
    return "\n\n".join(parts)


def knowledge_tool_specs(
    *, workspace_id: uuid.UUID, knowledge_base_ids: list[uuid.UUID]
) -> list[ToolSpec]:
    """The `knowledge_search` tool over these knowledge bases (none: no tool). Its result
    carries one Citation per passage, in the order of the numbers the model cites."""
    names = list(
        KnowledgeBase.objects.filter(workspace_id=workspace_id, id__in=knowledge_base_ids)
        .order_by("name")
        .values_list("name", "description")
    )
    if not names:
        return []
    ids = list(knowledge_base_ids)
    described = "; ".join(f"{n}: {d}" if d else n for n, d in names)

    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        query = str(args.get("query") or "").strip()
        if not query:
            return ToolResult(content="The query is empty.", is_error=True)
        raw_top_k = args.get("top_k")
        try:
            top_k = int(raw_top_k) if raw_top_k is not None else None
        except (TypeError, ValueError):
            return ToolResult(content="top_k must be an integer.", is_error=True)
        usage = UsageContext(
            workspace_id=ctx.workspace_id,
            user_id=ctx.user_id,
            agent_id=ctx.agent_id,
            run_id=ctx.run_id,
        )
        try:
            hits = await aknowledge_search(
                workspace_id=ctx.workspace_id,
                knowledge_base_ids=ids,
                query=query,
                top_k=top_k,
                usage=usage,
            )
        except (ProviderError, EmbeddingUnavailable) as exc:
            return ToolResult(content=f"The search failed: {exc.message}", is_error=True)
        data: dict[str, Any] = {"hits": len(hits)}
        if hits.rerank is not None:
            data["rerank"] = rerank_data(hits.rerank)
        return ToolResult(
            content=format_hits(hits),
            citations=[hit.citation() for hit in hits],
            data=data,
        )

    return [
        ToolSpec(
            name=KNOWLEDGE_TOOL_NAME,
            description=(
                "Search the knowledge bases for passages relevant to a question and cite "
                f"them. Knowledge bases: {described}."
            )[:1024],
            parameters={
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": "What to look for, as a question or keywords.",
                    },
                    "top_k": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 20,
                        "description": "How many passages to return (default: the "
                        "knowledge base's setting).",
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
            source="knowledge",
            execute=execute,
            ref="knowledge:" + ",".join(sorted(str(i) for i in ids)),
        )
    ]
