from django.db import models


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    TOOL = "tool", "Tool"
    SYSTEM = "system", "System"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    REQUIRES_ACTION = "requires_action", "Requires action"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"


# A conversation has at most one run in these states (a partial unique constraint).
ACTIVE_STATUSES = (RunStatus.RUNNING, RunStatus.REQUIRES_ACTION)
TERMINAL_STATUSES = (
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.INTERRUPTED,
)


class RunKind(models.TextChoices):
    SEND = "send", "New message"
    RERUN = "rerun", "Edit and re-run"
    REGENERATE = "regenerate", "Regenerate"
    APPROVAL = "approval", "Resume after approval"


class Rating(models.TextChoices):
    UP = "up", "Up"
    DOWN = "down", "Down"


class ConversationSource(models.TextChoices):
    CHAT = "chat", "Chat"
    OPENAI = "openai", "OpenAI-compatible endpoint"
    MCP = "mcp", "MCP endpoint"
    AGUI = "agui", "AG-UI endpoint"
    A2A = "a2a", "A2A endpoint"
    TASK = "task", "Scheduled task"
    TRIGGER = "trigger", "Inbound trigger"
