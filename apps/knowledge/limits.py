"""Knowledge limits and tuning, each overridable by a Django setting of the same name."""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Uploads
    "KNOWLEDGE_MAX_FILE_BYTES": 20 * 1024 * 1024,
    "KNOWLEDGE_MAX_FILES_PER_UPLOAD": 20,
    # Parsing guards
    "KNOWLEDGE_MAX_DOCUMENT_CHARS": 5_000_000,
    "KNOWLEDGE_MAX_PDF_PAGES": 2000,
    "KNOWLEDGE_MAX_UNCOMPRESSED_BYTES": 200 * 1024 * 1024,
    "KNOWLEDGE_MAX_COMPRESSION_RATIO": 100,
    "KNOWLEDGE_PARSE_TIMEOUT_SECONDS": 120,
    "KNOWLEDGE_PARSE_MEMORY_BYTES": 2 * 1024 * 1024 * 1024,
    "KNOWLEDGE_MAX_NESTING_DEPTH": 100,
    # Ingestion
    "KNOWLEDGE_EMBED_BATCH_SIZE": 64,
    "KNOWLEDGE_MAX_ATTEMPTS": 3,
    "KNOWLEDGE_RATE_LIMIT_RETRIES": 5,
    "KNOWLEDGE_RATE_LIMIT_BACKOFF_SECONDS": 10.0,
    "KNOWLEDGE_STALE_SECONDS": 15 * 60,
    "KNOWLEDGE_MAX_CHUNKS_PER_DOCUMENT": 20_000,
    # Retrieval
    "KNOWLEDGE_HNSW_EF_SEARCH": 400,
    "KNOWLEDGE_RRF_K": 60,
}


def limit(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
