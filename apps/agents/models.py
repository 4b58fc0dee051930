from django.conf import settings
from django.db import models

from apps.agents.choices import (
    JOB_TERMINAL_STATUSES,
    AgentJobKind,
    AgentJobStatus,
    GrantPermission,
    MemoryMode,
    Visibility,
)
from apps.core.jobs import Job
from apps.core.models import BaseModel

DEFAULT_MAX_LOOPS = 10
DEFAULT_WALL_CLOCK_SECONDS = 300


class Agent(BaseModel):
    """An agent of a workspace: a model, a system prompt, tools, skills, knowledge bases
    and sub-agents. Deleting archives it (`archived_at`); only a purge removes the row."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="agents"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, help_text="Unique in the workspace.")
    description = models.TextField(blank=True)
    avatar = models.CharField(
        max_length=2000, blank=True, help_text="An image URL (http/https) or a short emoji."
    )
    system_prompt = models.TextField(blank=True)
    model = models.ForeignKey(
        "providers.ProviderModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="agents",
        help_text="Empty: the workspace's default chat model.",
    )
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning = models.BooleanField(default=False, help_text='"Deep thinking" when the model can.')
    builtin_tools = models.JSONField(default=list, blank=True)
    tools = models.ManyToManyField("skills.Tool", blank=True, related_name="agents")
    skill_versions = models.ManyToManyField(
        "skills.SkillVersion", blank=True, related_name="agents", help_text="Pinned versions."
    )
    knowledge_bases = models.ManyToManyField(
        "knowledge.KnowledgeBase", blank=True, related_name="agents"
    )
    subagents = models.ManyToManyField(
        "self", blank=True, symmetrical=False, related_name="parent_agents"
    )
    memory_mode = models.CharField(
        max_length=16, choices=MemoryMode.choices, default=MemoryMode.CONVERSATION
    )
    max_loops = models.PositiveSmallIntegerField(default=DEFAULT_MAX_LOOPS)
    wall_clock_seconds = models.PositiveIntegerField(default=DEFAULT_WALL_CLOCK_SECONDS)
    suggestions_enabled = models.BooleanField(default=False)
    opening_message = models.TextField(blank=True)
    starter_questions = models.JSONField(default=list, blank=True)
    tools_requiring_approval = models.JSONField(
        default=list, blank=True, help_text="Names of tools whose calls wait for a user's approval."
    )
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    version = models.PositiveIntegerField(default=1, help_text="The current version number.")
    archived_at = models.DateTimeField(null=True, blank=True, db_index=True)
    archived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "slug"], name="agent_workspace_slug_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class AgentGrant(BaseModel):
    """A named member an agent with `members` visibility is shared with."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    permission = models.CharField(
        max_length=8, choices=GrantPermission.choices, default=GrantPermission.USE
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["agent", "user"], name="agent_grant_unique")]

    def __str__(self) -> str:
        return f"{self.agent} -> {self.user} ({self.permission})"


class AgentVersion(BaseModel):
    """One configuration an agent had: written on creation and on every change, so any
    earlier configuration can be listed and restored."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(help_text="Every configurable field, references as ids.")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["agent_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "number"], name="agent_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} v{self.number}"


class AgentJob(BaseModel, Job):
    """An asynchronous helper job (agent draft generation, prompt optimization) a user
    submits and polls; it always ends succeeded, failed or cancelled. Its lifecycle
    (claim, heartbeat, finish, stale sweep) is `core.jobs`."""

    RUNNING_STATUSES = frozenset({AgentJobStatus.RUNNING})
    TERMINAL_STATUSES = JOB_TERMINAL_STATUSES

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=20, choices=AgentJobKind.choices)
    status = models.CharField(
        max_length=20, choices=AgentJobStatus.choices, default=AgentJobStatus.QUEUED
    )
    input = models.JSONField(default=dict)
    result = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="agent_job_status_created")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status})"


class CodeInterpreterPolicy(BaseModel):
    """Whether a workspace's agents may run code in the sandbox (docs/sandbox.md), and its
    limits. Absent row: off. Agents opt in with the `code_interpreter` built-in tool."""

    workspace = models.OneToOneField(
        "users.Workspace", on_delete=models.CASCADE, related_name="code_interpreter_policy"
    )
    enabled = models.BooleanField(default=False)
    require_approval = models.BooleanField(
        default=False, help_text="Every execution waits for a user's approval."
    )
    cpu_seconds = models.PositiveIntegerField(default=10)
    wall_seconds = models.PositiveIntegerField(default=30)
    memory_mb = models.PositiveIntegerField(default=512)
    output_bytes = models.PositiveIntegerField(default=64 * 1024)
    max_processes = models.PositiveIntegerField(default=32)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "code interpreter policy"
        verbose_name_plural = "code interpreter policies"

    def __str__(self) -> str:
        return f"Code interpreter of {self.workspace_id}: {'on' if self.enabled else 'off'}"


class CodeExecution(BaseModel):
    """One execution of code in the sandbox (the code interpreter or a skill script): the
    hand-off to a sandbox worker and the record operators read."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="+")
    agent_id = models.UUIDField(null=True, blank=True)
    run_id = models.UUIDField(null=True, blank=True)
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    user_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=16, default="code")  # "code" | "skill_script"
    code = models.TextField(blank=True)
    skill_version_id = models.UUIDField(null=True, blank=True)
    script = models.CharField(max_length=500, blank=True)
    args = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, default="queued", db_index=True)
    outcome = models.JSONField(default=dict, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"
