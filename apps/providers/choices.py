from django.db import models


class ProviderKind(models.TextChoices):
    """Which client adapter speaks to a provider."""

    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic"
    LOCAL = "local", "Local model (in-process, offline)"


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"
    RERANK = "rerank", "Rerank"


class Capability(models.TextChoices):
    TOOLS = "tools", "Tool calling"
    VISION = "vision", "Vision (image input)"
    JSON_MODE = "json_mode", "JSON mode"
    REASONING = "reasoning", "Reasoning / thinking"


class UsageOutcome(models.TextChoices):
    OK = "ok", "Succeeded"
    ERROR = "error", "Failed"
    CANCELLED = "cancelled", "Cancelled"
