"""Tools registry, OpenAPI imports, MCP servers and skills (SKILL.md bundles)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.crypto import EncryptedTextField
from apps.core.models import BaseModel
from apps.skills.choices import (
    BuiltinTool,
    McpAuth,
    McpStatus,
    McpTransport,
    OpenApiAuth,
    RemoteAgentAuth,
    RemoteAgentStatus,
    SkillSource,
    ToolSource,
)


class StdioCommand(BaseModel):
    """An MCP server command an operator allows workspaces to run over stdio (admin only).

    Users pick one by name; they never send a command, arguments or environment."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.CharField(max_length=500, blank=True)
    command = models.CharField(max_length=500)
    args = models.JSONField(default=list, blank=True, help_text="Fixed arguments (a JSON list).")
    env = EncryptedTextField(
        blank=True, default="", help_text='Environment as a JSON object, e.g. {"TOKEN": "…"}.'
    )
    cwd = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class McpServer(BaseModel):
    """An MCP server registered in a workspace, and what was discovered on it."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="mcp_servers"
    )
    name = models.CharField(max_length=64)
    transport = models.CharField(max_length=20, choices=McpTransport.choices)
    url = models.URLField(max_length=2000, blank=True)
    stdio_command = models.ForeignKey(
        StdioCommand, null=True, blank=True, on_delete=models.PROTECT, related_name="servers"
    )
    auth_type = models.CharField(max_length=10, choices=McpAuth.choices, default=McpAuth.NONE)
    headers = EncryptedTextField(blank=True, default="", help_text="JSON object, encrypted.")
    bearer_token = EncryptedTextField(blank=True, default="")
    oauth_client_info = EncryptedTextField(blank=True, default="")
    oauth_tokens = EncryptedTextField(blank=True, default="")
    oauth_pending = EncryptedTextField(blank=True, default="")
    oauth_state_hash = models.CharField(
        max_length=64, blank=True, db_index=True, verbose_name="OAuth state hash"
    )
    timeout_seconds = models.PositiveIntegerField(default=60)
    status = models.CharField(max_length=24, choices=McpStatus.choices, default=McpStatus.PENDING)
    status_reason = models.CharField(max_length=1000, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    server_info = models.JSONField(default=dict, blank=True)
    prompts = models.JSONField(default=list, blank=True)
    resources = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "MCP server"
        verbose_name_plural = "MCP servers"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="mcp_server_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class OpenApiSource(BaseModel):
    """An OpenAPI document imported into a workspace; each operation became a Tool."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="openapi_sources"
    )
    name = models.CharField(max_length=64)
    base_url = models.URLField(max_length=2000)
    source_url = models.URLField(max_length=2000, blank=True)
    document = models.JSONField(default=dict)
    auth_type = models.CharField(
        max_length=10, choices=OpenApiAuth.choices, default=OpenApiAuth.NONE
    )
    auth_name = models.CharField(max_length=100, blank=True, help_text="Header or query name.")
    credential = EncryptedTextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "OpenAPI source"
        verbose_name_plural = "OpenAPI sources"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="openapi_source_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class RemoteAgent(BaseModel):
    """A remote A2A agent registered in a workspace: its URL, its (encrypted) credential
    and its last fetched agent card. Its tool (`ask_<name>`) delegates a task to it."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="remote_agents"
    )
    name = models.SlugField(max_length=50, help_text="Unique in the workspace; the tool name.")
    url = models.URLField(
        max_length=2000,
        help_text="The agent's base URL (card at <url>/.well-known/agent-card.json) or the "
        "card's own URL (ending in .json).",
    )
    auth_type = models.CharField(
        max_length=10, choices=RemoteAgentAuth.choices, default=RemoteAgentAuth.NONE
    )
    auth_header = models.CharField(max_length=100, blank=True, help_text="For header auth.")
    credential = EncryptedTextField(blank=True, default="")
    timeout_seconds = models.PositiveIntegerField(default=300)
    card = models.JSONField(default=dict, blank=True, help_text="The last fetched card.")
    card_fetched_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=RemoteAgentStatus.choices, default=RemoteAgentStatus.PENDING
    )
    status_reason = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "remote A2A agent"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="remote_agent_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Tool(BaseModel):
    """A tool an agent can be given: built-in, discovered on an MCP server, or an imported
    OpenAPI operation."""

    workspace = models.ForeignKey("users.Workspace", on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    parameters = models.JSONField(default=dict)
    source = models.CharField(max_length=10, choices=ToolSource.choices)
    builtin = models.CharField(max_length=20, choices=BuiltinTool.choices, blank=True)
    mcp_server = models.ForeignKey(
        McpServer,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tools",
        verbose_name="MCP server",
    )
    openapi_source = models.ForeignKey(
        OpenApiSource,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tools",
        verbose_name="OpenAPI source",
    )
    remote_agent = models.OneToOneField(
        RemoteAgent,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tool",
        verbose_name="remote A2A agent",
    )
    remote_name = models.CharField(max_length=200, blank=True, help_text="Name on the MCP server.")
    operation = models.JSONField(default=dict, blank=True, help_text="OpenAPI method/path/params.")
    annotations = models.JSONField(default=dict, blank=True)
    requires_approval = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    available = models.BooleanField(
        default=True, help_text="False when the MCP server no longer lists it."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="tool_name_unique"),
            models.UniqueConstraint(
                fields=["mcp_server", "remote_name"],
                condition=Q(mcp_server__isnull=False),
                name="tool_mcp_remote_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Skill(BaseModel):
    """A skill (SKILL.md bundle) of a workspace, or a system skill (no workspace) offered
    to every workspace by the operator."""

    workspace = models.ForeignKey(
        "users.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="skills"
    )
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=1024)
    latest_version = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=Q(workspace__isnull=False),
                name="skill_name_unique",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(workspace__isnull=True),
                name="system_skill_name_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_system(self) -> bool:
        return self.workspace_id is None


class SkillVersion(BaseModel):
    """One immutable version of a skill: its SKILL.md and resource files."""

    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=1024)
    skill_md = models.TextField()
    metadata = models.JSONField(default=dict, blank=True, help_text="SKILL.md front matter.")
    source = models.CharField(max_length=10, choices=SkillSource.choices)
    source_url = models.URLField(max_length=2000, blank=True)
    total_size = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["skill_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["skill", "number"], name="skill_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.number}"


class SkillFile(BaseModel):
    """A resource of a skill version (script, reference, asset), stored in the database.
    Scripts are data: the platform never executes them."""

    version = models.ForeignKey(SkillVersion, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=500)
    content = models.BinaryField()
    size = models.PositiveIntegerField()

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["version", "path"], name="skill_file_path_unique")
        ]

    def __str__(self) -> str:
        return self.path
