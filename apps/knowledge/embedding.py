"""The embedding model of a knowledge base and batched embedding (used by ingestion in
services and by retrieval in selectors)."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from apps.knowledge.limits import limit
from apps.knowledge.models import KnowledgeBase
from apps.knowledge.search import normalize
from apps.providers.exceptions import NoModelConfigured, ProviderError
from apps.providers.services import embed_texts, model_info
from apps.providers.types import UsageContext


@dataclass(frozen=True)
class EmbeddingModel:
    """The model that embeds a knowledge base: `key` tags the vectors it made."""

    model_id: uuid.UUID
    key: str
    dimensions: int | None


def embedding_model_resolve(*, knowledge_base: KnowledgeBase) -> EmbeddingModel | None:
    """The embedding model of `knowledge_base` (its own, else the workspace default), or
    None when the workspace has none: the knowledge base is then full-text only."""
    try:
        info = model_info(
            workspace_id=knowledge_base.workspace_id,
            model_id=knowledge_base.embedding_model_id,
            kind="embedding",
        )
    except NoModelConfigured:
        return None
    return EmbeddingModel(model_id=info.id, key=info.id.hex, dimensions=info.dimensions)


def embed_batches(
    *,
    knowledge_base: KnowledgeBase,
    model: EmbeddingModel,
    texts: Sequence[str],
    usage: UsageContext,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Embed `texts` in batches of KNOWLEDGE_EMBED_BATCH_SIZE, L2-normalised.
    Raises the provider's errors (ProviderRateLimited after its own retries)."""
    size = max(1, int(limit("KNOWLEDGE_EMBED_BATCH_SIZE")))
    vectors: list[list[float]] = []
    for start in range(0, len(texts), size):
        batch = list(texts[start : start + size])
        embedded = embed_texts(
            workspace_id=knowledge_base.workspace_id,
            model_id=model.model_id,
            texts=batch,
            usage=usage,
        )
        if len(embedded) != len(batch):
            raise ProviderError("The embedding provider returned a wrong number of vectors.")
        vectors.extend(normalize(v) for v in embedded)
        if on_batch is not None:
            on_batch(len(vectors))
    return vectors
