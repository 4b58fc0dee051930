from django.conf import settings
from django.db import models

from apps.core.jobs import Job
from apps.core.models import BaseModel
from apps.knowledge.choices import (
    PROCESSING_STATUSES,
    TERMINAL_STATUSES,
    DocumentSource,
    DocumentStatus,
    FileKind,
    Language,
    SearchMode,
    Splitter,
)
from apps.knowledge.fields import EmbeddingField


class KnowledgeBase(BaseModel):
    """A named collection of documents a workspace's agents can search."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="knowledge_bases"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    language = models.CharField(max_length=20, choices=Language.choices, default=Language.ENGLISH)
    # Null: the workspace's default embedding model, resolved at indexing time.
    embedding_model = models.ForeignKey(
        "providers.ProviderModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="knowledge_bases",
    )
    chunk_size = models.PositiveIntegerField(default=512, help_text="Tokens per chunk.")
    chunk_overlap = models.PositiveIntegerField(default=64, help_text="Tokens shared by chunks.")
    splitter = models.CharField(max_length=20, choices=Splitter.choices, default=Splitter.HEADINGS)
    top_k = models.PositiveSmallIntegerField(default=5)
    score_threshold = models.FloatField(default=0.0)
    search_mode = models.CharField(
        max_length=10, choices=SearchMode.choices, default=SearchMode.HYBRID
    )
    # Null: no rerank (unless a search asks for it: then the workspace's default).
    rerank_model = models.ForeignKey(
        "providers.ProviderModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reranking_knowledge_bases",
    )
    rerank_candidates = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Retrieved passages the reranker reads; empty: max(4 x top_k, 20), at most 100.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="knowledge_base_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class UploadBatch(BaseModel):
    """Documents added by one request; its progress is counted from their statuses."""

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="batches"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "upload batch"
        verbose_name_plural = "upload batches"

    def __str__(self) -> str:
        return f"batch {self.id}"


def document_upload_to(instance: "Document", filename: str) -> str:
    return f"knowledge/{instance.knowledge_base_id}/{instance.id}"


class Document(BaseModel, Job):
    """One source (file, URL or text) of a knowledge base and its ingestion state (a job:
    its lifecycle is `core.jobs`; `error_message` says why it failed or is retried)."""

    RUNNING_STATUSES = frozenset(PROCESSING_STATUSES)
    TERMINAL_STATUSES = TERMINAL_STATUSES

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="documents"
    )
    batch = models.ForeignKey(
        UploadBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    name = models.CharField(max_length=255)
    source = models.CharField(max_length=10, choices=DocumentSource.choices)
    source_url = models.URLField(max_length=2000, blank=True, default="")
    kind = models.CharField(max_length=10, choices=FileKind.choices)
    file = models.FileField(upload_to=document_upload_to, max_length=500)
    size = models.PositiveBigIntegerField(default=0)
    checksum = models.CharField(max_length=64, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=20, choices=DocumentStatus.choices, default=DocumentStatus.WAITING
    )
    # Bumped by redo/re-index/override: a task for an older generation is a no-op.
    generation = models.PositiveIntegerField(default=1)
    rate_limit_retries = models.PositiveSmallIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text="Share of passages embedded.")
    chunk_count = models.PositiveIntegerField(default=0)
    token_count = models.PositiveIntegerField(default=0)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="knowledge_doc_status_idx")]

    def __str__(self) -> str:
        return self.name


class Chunk(BaseModel):
    """A passage of a document, with its embedding; the unit retrieval returns."""

    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.CASCADE, related_name="chunks"
    )
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    content = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    manual = models.BooleanField(default=False, help_text="Added or edited by hand.")
    # The text-search configuration (stemmer) the full-text index uses for this row.
    fts_config = models.CharField(max_length=20, default=Language.ENGLISH)
    embedding = EmbeddingField(null=True, blank=True)
    embedding_dims = models.PositiveSmallIntegerField(null=True, blank=True)
    embedding_model_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["document_id", "position"]
        indexes = [
            models.Index(
                fields=["knowledge_base", "embedding_dims"], name="knowledge_chunk_kb_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "position"], name="knowledge_chunk_position_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"
