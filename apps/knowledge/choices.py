from django.db import models


class DocumentStatus(models.TextChoices):
    """Where a document is in the ingestion pipeline. `indexed` and `failed` are terminal."""

    WAITING = "waiting", "Waiting"
    PARSING = "parsing", "Parsing"
    EMBEDDING = "embedding", "Embedding"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (DocumentStatus.WAITING, DocumentStatus.PARSING, DocumentStatus.EMBEDDING)
PROCESSING_STATUSES = (DocumentStatus.PARSING, DocumentStatus.EMBEDDING)
TERMINAL_STATUSES = frozenset({DocumentStatus.INDEXED, DocumentStatus.FAILED})


class DocumentSource(models.TextChoices):
    UPLOAD = "upload", "Uploaded file"
    URL = "url", "Imported from a URL"
    TEXT = "text", "Raw text"


class FileKind(models.TextChoices):
    """The parsed type of a document, decided by its content (not only its name)."""

    TEXT = "text", "Plain text"
    MARKDOWN = "markdown", "Markdown"
    HTML = "html", "HTML"
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (DOCX)"
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


class Splitter(models.TextChoices):
    HEADINGS = "headings", "By headings, then paragraphs"
    PARAGRAPHS = "paragraphs", "By paragraphs"


class SearchMode(models.TextChoices):
    VECTOR = "vector", "Vector (semantic)"
    FULLTEXT = "fulltext", "Full-text"
    HYBRID = "hybrid", "Hybrid (reciprocal-rank fusion)"


class Language(models.TextChoices):
    """The language of a knowledge base: picks the full-text stemmer."""

    SIMPLE = "simple", "Any (no stemming)"
    ENGLISH = "english", "English"
    FRENCH = "french", "French"
    GERMAN = "german", "German"
    SPANISH = "spanish", "Spanish"
    ITALIAN = "italian", "Italian"
    PORTUGUESE = "portuguese", "Portuguese"
    DUTCH = "dutch", "Dutch"
