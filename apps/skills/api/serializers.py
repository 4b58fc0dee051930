from typing import Any

from rest_framework import serializers

from apps.core.crypto import mask_secret
from apps.skills.choices import McpAuth, McpTransport, OpenApiAuth, RemoteAgentAuth, ToolSource
from apps.skills.models import (
    McpServer,
    OpenApiSource,
    RemoteAgent,
    Skill,
    SkillFile,
    SkillVersion,
    StdioCommand,
    Tool,
)
from apps.skills.selectors import mcp_server_has_oauth_tokens, mcp_server_masked_headers


class ToolSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "parameters",
            "source",
            "builtin",
            "mcp_server",
            "openapi_source",
            "remote_agent",
            "remote_name",
            "annotations",
            "requires_approval",
            "enabled",
            "available",
            "created_at",
            "updated_at",
        ]


class ToolUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    requires_approval = serializers.BooleanField(required=False)


class ToolListQuerySerializer(serializers.Serializer):
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=ToolSource.choices, required=False
    )
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    mcp_server = serializers.UUIDField(required=False)
    openapi_source = serializers.UUIDField(required=False)


class ToolExecSerializer(serializers.Serializer):
    arguments = serializers.DictField(default=dict)


class ToolResultSerializer(serializers.Serializer):
    content = serializers.CharField()
    is_error = serializers.BooleanField()
    data = serializers.DictField()  # type: ignore[assignment]


class StdioCommandSerializer(serializers.ModelSerializer):
    class Meta:
        model = StdioCommand
        fields = ["name", "description"]


class McpServerSerializer(serializers.ModelSerializer):
    stdio_command = serializers.SlugRelatedField(  # type: ignore[var-annotated]
        slug_field="name", read_only=True, allow_null=True
    )
    headers = serializers.SerializerMethodField()
    bearer_token = serializers.SerializerMethodField()
    oauth_authorized = serializers.SerializerMethodField()
    tool_count = serializers.SerializerMethodField()

    class Meta:
        model = McpServer
        fields = [
            "id",
            "name",
            "transport",
            "url",
            "stdio_command",
            "auth_type",
            "headers",
            "bearer_token",
            "oauth_authorized",
            "timeout_seconds",
            "status",
            "status_reason",
            "last_checked_at",
            "server_info",
            "prompts",
            "resources",
            "tool_count",
            "created_at",
            "updated_at",
        ]

    def get_headers(self, obj: McpServer) -> dict[str, str]:
        return mcp_server_masked_headers(obj)

    def get_bearer_token(self, obj: McpServer) -> str:
        return mask_secret(obj.bearer_token) if obj.bearer_token else ""

    def get_oauth_authorized(self, obj: McpServer) -> bool:
        return mcp_server_has_oauth_tokens(obj)

    def get_tool_count(self, obj: McpServer) -> int:
        return obj.tools.count()


_FORBIDDEN_STDIO_FIELDS = ("command", "args", "arguments", "env", "environment", "cwd")


class McpServerCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, trim_whitespace=True)
    transport = serializers.ChoiceField(choices=McpTransport.choices)
    url = serializers.URLField(max_length=2000, required=False, default="")
    stdio_command = serializers.CharField(
        max_length=64,
        required=False,
        default="",
        help_text="Name of a command in the operator's registry (GET /mcp/commands).",
    )
    auth_type = serializers.ChoiceField(choices=McpAuth.choices, default=McpAuth.NONE)
    headers = serializers.DictField(child=serializers.CharField(), required=False)
    bearer_token = serializers.CharField(required=False, default="", write_only=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=600, default=60)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Users never send a command line: that is how peers became remote code execution.
        sent = [f for f in _FORBIDDEN_STDIO_FIELDS if f in self.initial_data]
        if sent:
            raise serializers.ValidationError(
                dict.fromkeys(
                    sent,
                    "Not accepted: stdio servers are chosen by name from the operator's "
                    "registry (stdio_command).",
                )
            )
        if attrs["transport"] == McpTransport.STDIO and not attrs.get("stdio_command"):
            raise serializers.ValidationError({"stdio_command": "Required for stdio."})
        if attrs["transport"] != McpTransport.STDIO and not attrs.get("url"):
            raise serializers.ValidationError({"url": "Required for this transport."})
        return attrs


class McpServerUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=64, trim_whitespace=True)
    url = serializers.URLField(max_length=2000, required=False)
    headers = serializers.DictField(child=serializers.CharField(), required=False)
    bearer_token = serializers.CharField(required=False, write_only=True)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=600, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        sent = [f for f in _FORBIDDEN_STDIO_FIELDS if f in self.initial_data]
        if sent:
            raise serializers.ValidationError(dict.fromkeys(sent, "Not accepted."))
        return attrs


class OAuthStartSerializer(serializers.Serializer):
    redirect_uri = serializers.URLField(
        required=False,
        help_text="Where the authorization server sends the user back; "
        "defaults to this platform's /api/v1/mcp/oauth/callback.",
    )


class OAuthStartResultSerializer(serializers.Serializer):
    authorization_url = serializers.URLField()


class OAuthCallbackSerializer(serializers.Serializer):
    state = serializers.CharField(max_length=500)
    code = serializers.CharField(max_length=2000)


class OpenApiSourceSerializer(serializers.ModelSerializer):
    credential = serializers.SerializerMethodField()
    tool_count = serializers.SerializerMethodField()

    class Meta:
        model = OpenApiSource
        fields = [
            "id",
            "name",
            "base_url",
            "source_url",
            "auth_type",
            "auth_name",
            "credential",
            "tool_count",
            "created_at",
            "updated_at",
        ]

    def get_credential(self, obj: OpenApiSource) -> str:
        return mask_secret(obj.credential) if obj.credential else ""

    def get_tool_count(self, obj: OpenApiSource) -> int:
        return obj.tools.count()


class OpenApiImportSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, trim_whitespace=True)
    url = serializers.URLField(max_length=2000, required=False, default="")
    document = serializers.JSONField(required=False, help_text="The document (JSON object).")
    file = serializers.FileField(required=False, help_text="The document as a JSON/YAML file.")
    base_url = serializers.URLField(max_length=2000, required=False, default="")
    auth_type = serializers.ChoiceField(choices=OpenApiAuth.choices, default=OpenApiAuth.NONE)
    auth_name = serializers.CharField(max_length=100, required=False, default="")
    credential = serializers.CharField(required=False, default="", write_only=True)


class SkillSerializer(serializers.ModelSerializer):
    is_system = serializers.BooleanField(read_only=True)

    class Meta:
        model = Skill
        fields = [
            "id",
            "name",
            "description",
            "latest_version",
            "is_system",
            "created_at",
            "updated_at",
        ]


class SkillFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = SkillFile
        fields = ["path", "size"]


class SkillVersionSerializer(serializers.ModelSerializer):
    skill_id = serializers.UUIDField(read_only=True)
    files = SkillFileSerializer(many=True, read_only=True)

    class Meta:
        model = SkillVersion
        fields = [
            "id",
            "skill_id",
            "number",
            "name",
            "description",
            "skill_md",
            "metadata",
            "source",
            "source_url",
            "total_size",
            "files",
            "created_at",
        ]


class SkillVersionBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = SkillVersion
        fields = ["id", "number", "name", "description", "source", "total_size", "created_at"]


class SkillWriteSerializer(serializers.Serializer):
    skill_md = serializers.CharField(max_length=200_000, trim_whitespace=False)


class SkillUploadSerializer(serializers.Serializer):
    file = serializers.FileField()


class SkillImportSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)


class RemoteAgentSerializer(serializers.ModelSerializer):
    credential = serializers.SerializerMethodField()
    tool = serializers.SerializerMethodField()
    card = serializers.JSONField(read_only=True, help_text="The last fetched A2A agent card.")

    class Meta:
        model = RemoteAgent
        fields = [
            "id",
            "name",
            "url",
            "auth_type",
            "auth_header",
            "credential",
            "timeout_seconds",
            "status",
            "status_reason",
            "card",
            "card_fetched_at",
            "tool",
            "created_at",
            "updated_at",
        ]

    def get_credential(self, obj: RemoteAgent) -> str:
        """Masked: a credential is never returned."""
        return mask_secret(obj.credential) if obj.credential else ""

    def get_tool(self, obj: RemoteAgent) -> dict[str, str] | None:
        """The tool (id, name) to give agents so they can delegate to this one."""
        tool = getattr(obj, "tool", None)
        return {"id": str(tool.id), "name": tool.name} if tool else None


_REMOTE_NAME = {
    "max_length": 50,
    "help_text": "Letters, digits, - and _ ; the agents' tool is ask_<name>.",
}


class RemoteAgentCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(**_REMOTE_NAME)  # type: ignore[arg-type]
    url = serializers.URLField(
        max_length=2000,
        help_text="The agent's base URL (its card at <url>/.well-known/agent-card.json) or "
        "its card's URL (ending in .json).",
    )
    auth_type = serializers.ChoiceField(
        choices=RemoteAgentAuth.choices, default=RemoteAgentAuth.NONE
    )
    auth_header = serializers.CharField(max_length=100, required=False, default="")
    credential = serializers.CharField(max_length=4000, required=False, default="", write_only=True)
    timeout_seconds = serializers.IntegerField(min_value=5, max_value=3600, default=300)


class RemoteAgentUpdateSerializer(serializers.Serializer):
    name = serializers.SlugField(required=False, **_REMOTE_NAME)  # type: ignore[arg-type]
    url = serializers.URLField(max_length=2000, required=False)
    auth_type = serializers.ChoiceField(choices=RemoteAgentAuth.choices, required=False)
    auth_header = serializers.CharField(max_length=100, required=False)
    credential = serializers.CharField(max_length=4000, required=False, write_only=True)
    timeout_seconds = serializers.IntegerField(min_value=5, max_value=3600, required=False)
