from django.db import models


class Visibility(models.TextChoices):
    """Who in the workspace sees and uses an agent (admins and owners always do)."""

    PRIVATE = "private", "Only its creator"
    WORKSPACE = "workspace", "Every member of the workspace"
    MEMBERS = "members", "Its creator and the members it is granted to"


class GrantPermission(models.TextChoices):
    """What a named member may do with an agent granted to them."""

    USE = "use", "See and chat with it"
    EDIT = "edit", "Also change its configuration"


class MemoryMode(models.TextChoices):
    """How much of the conversation the agent is given on each turn."""

    CONVERSATION = "conversation", "The conversation's history (trimmed to the context window)"
    NONE = "none", "Only the current message"


class AgentBuiltinTool(models.TextChoices):
    """Tools the run engine provides itself (sub-agents and knowledge search are offered
    automatically when an agent has sub-agents or knowledge bases)."""

    CURRENT_TIME = "current_time", "Current date and time"
    CALCULATOR = "calculator", "Calculator"
    # Offered only where the workspace enabled it (CodeInterpreterPolicy, docs/sandbox.md);
    # with skills, `skill_script_run` comes with it.
    CODE_INTERPRETER = "code_interpreter", "Code interpreter (sandboxed Python)"


class AgentJobKind(models.TextChoices):
    GENERATE_AGENT = "generate_agent", "Generate an agent draft from a description"
    OPTIMIZE_PROMPT = "optimize_prompt", "Optimize a system prompt"


class AgentJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


JOB_TERMINAL_STATUSES = frozenset(
    {AgentJobStatus.SUCCEEDED, AgentJobStatus.FAILED, AgentJobStatus.CANCELLED}
)
