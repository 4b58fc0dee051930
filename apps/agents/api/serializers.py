import uuid
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.choices import AgentJobKind, AgentJobStatus, GrantPermission, Visibility
from apps.agents.documents import (
    MAX_REFERENCES,
    AgentConfigSerializer,
    unique_items,
)
from apps.agents.models import Agent, AgentGrant, AgentJob, AgentVersion
from apps.agents.selectors import agent_can_edit, agent_can_manage

SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class AgentWriteSerializer(AgentConfigSerializer):
    slug = serializers.RegexField(
        SLUG_RE,
        max_length=100,
        required=False,
        error_messages={"invalid": "Use lowercase letters, digits and single hyphens."},
        help_text="Unique in the workspace; derived from the name when omitted.",
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    model_id = serializers.UUIDField(
        allow_null=True, required=False, help_text="Null: the workspace's default chat model."
    )
    tool_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=MAX_REFERENCES, required=False
    )
    skill_version_ids = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=MAX_REFERENCES,
        required=False,
        help_text="Pinned skill versions (one per skill).",
    )
    knowledge_base_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=MAX_REFERENCES, required=False
    )
    subagent_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=20, required=False
    )

    def validate_slug(self, value: str) -> str:
        try:
            uuid.UUID(value)
        except ValueError:
            return value
        raise serializers.ValidationError("A slug cannot look like an id.")

    def validate_tool_ids(self, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return unique_items(value, "tool")

    def validate_skill_version_ids(self, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return unique_items(value, "skill version")

    def validate_knowledge_base_ids(self, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return unique_items(value, "knowledge base")

    def validate_subagent_ids(self, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return unique_items(value, "sub-agent")


class AgentPermissionsSerializer(serializers.Serializer):
    edit = serializers.BooleanField(help_text="You may change its configuration.")
    manage = serializers.BooleanField(help_text="You may share, archive and purge it.")


def _ids(manager: Any) -> list[str]:
    return sorted(str(obj.pk) for obj in manager.all())


class AgentSerializer(serializers.ModelSerializer):
    workspace_id = serializers.UUIDField(read_only=True)
    model_id = serializers.UUIDField(read_only=True, allow_null=True)
    created_by_id = serializers.UUIDField(read_only=True, allow_null=True)
    builtin_tools = serializers.ListField(child=serializers.CharField(), read_only=True)
    starter_questions = serializers.ListField(child=serializers.CharField(), read_only=True)
    tools_requiring_approval = serializers.ListField(child=serializers.CharField(), read_only=True)
    tool_ids = serializers.SerializerMethodField()
    skill_version_ids = serializers.SerializerMethodField()
    knowledge_base_ids = serializers.SerializerMethodField()
    subagent_ids = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    _reference_map: Any  # the context's references, read once (see _references)

    class Meta:
        model = Agent
        fields = [
            "id",
            "workspace_id",
            "name",
            "slug",
            "description",
            "avatar",
            "system_prompt",
            "model_id",
            "temperature",
            "max_tokens",
            "reasoning",
            "builtin_tools",
            "tool_ids",
            "skill_version_ids",
            "knowledge_base_ids",
            "subagent_ids",
            "memory_mode",
            "max_loops",
            "wall_clock_seconds",
            "suggestions_enabled",
            "opening_message",
            "starter_questions",
            "tools_requiring_approval",
            "visibility",
            "version",
            "created_by_id",
            "archived_at",
            "created_at",
            "updated_at",
            "permissions",
        ]
        read_only_fields = fields

    def _references(self, obj: Agent, name: str, relation: str) -> list[str]:
        """From the context's `references` (agents_reference_ids: one query for a page)
        when the view read them, else from the agent's (prefetched) relation."""
        try:
            references = self._reference_map
        except AttributeError:  # once per serializer (DRF's context walks to the root)
            references = self._reference_map = self.context.get("references")
        if references is not None and obj.pk in references:
            return list(references[obj.pk][name])
        return _ids(getattr(obj, relation))

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_tool_ids(self, obj: Agent) -> list[str]:
        return self._references(obj, "tool_ids", "tools")

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_skill_version_ids(self, obj: Agent) -> list[str]:
        return self._references(obj, "skill_version_ids", "skill_versions")

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_knowledge_base_ids(self, obj: Agent) -> list[str]:
        return self._references(obj, "knowledge_base_ids", "knowledge_bases")

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_subagent_ids(self, obj: Agent) -> list[str]:
        return self._references(obj, "subagent_ids", "subagents")

    @extend_schema_field(AgentPermissionsSerializer)
    def get_permissions(self, obj: Agent) -> dict[str, bool]:
        actor = self.context["actor"]
        return {
            "edit": agent_can_edit(actor=actor, agent=obj) and obj.archived_at is None,
            "manage": agent_can_manage(actor=actor, agent=obj),
        }


class DuplicateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)


class GrantSerializer(serializers.Serializer):
    user_id = serializers.UUIDField()
    permission = serializers.ChoiceField(
        choices=GrantPermission.choices, default=GrantPermission.USE
    )
    email = serializers.EmailField(read_only=True, source="user.email")
    name = serializers.CharField(read_only=True, source="user.name")
    created_at = serializers.DateTimeField(read_only=True)


class SharingSerializer(serializers.Serializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    grants = serializers.ListField(child=GrantSerializer(), required=False, max_length=500)

    def validate_grants(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        unique_items([g["user_id"] for g in value], "user")
        return value


def sharing_data(*, agent: Agent, grants: list[AgentGrant]) -> dict[str, Any]:
    return {
        "visibility": agent.visibility,
        "grants": GrantSerializer(grants, many=True).data,
    }


class AgentVersionSerializer(serializers.ModelSerializer):
    created_by_id = serializers.UUIDField(read_only=True, allow_null=True)
    config = serializers.DictField(read_only=True, help_text="Every configurable field.")

    class Meta:
        model = AgentVersion
        fields = ["number", "note", "config", "created_by_id", "created_at"]
        read_only_fields = fields


# --- import / export ----------------------------------------------------------------


# --- jobs ---------------------------------------------------------------------------


class GenerateAgentJobSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=4000)
    tool_ids = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=MAX_REFERENCES,
        required=False,
        help_text="Tools the draft may choose from.",
    )

    def validate_tool_ids(self, value: list[uuid.UUID]) -> list[str]:
        return [str(v) for v in unique_items(value, "tool")]


class OptimizePromptJobSerializer(serializers.Serializer):
    system_prompt = serializers.CharField(max_length=100_000, trim_whitespace=False)
    goal = serializers.CharField(
        max_length=2000, allow_blank=True, required=False, help_text="What to improve."
    )

    def validate_system_prompt(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class AgentJobSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=AgentJobKind.choices, read_only=True)
    status = serializers.ChoiceField(choices=AgentJobStatus.choices, read_only=True)
    input = serializers.DictField(read_only=True)
    result = serializers.DictField(
        read_only=True,
        allow_null=True,
        help_text="generate_agent: an agent draft (POST it to /agents); optimize_prompt: "
        "{system_prompt, changes}.",
    )
    error = serializers.SerializerMethodField()

    class Meta:
        model = AgentJob
        fields = [
            "id",
            "kind",
            "status",
            "input",
            "result",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, obj: AgentJob) -> dict[str, str] | None:
        if not obj.error_code:
            return None
        return {"code": obj.error_code, "message": obj.error_message}


# --- version diff -------------------------------------------------------------------


class VersionDiffQuerySerializer(serializers.Serializer):
    before = serializers.IntegerField(min_value=1, help_text="The older version's number.")
    after = serializers.IntegerField(min_value=1, help_text="The newer version's number.")


class DiffLineSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=["equal", "delete", "insert"])
    text = serializers.CharField()


class FieldChangeSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The configuration field that differs.")
    before = serializers.JSONField(help_text="Its value in `before`; references by name.")
    after = serializers.JSONField(help_text="Its value in `after`; references by name.")
    lines = DiffLineSerializer(
        many=True, help_text="For text fields (instructions, ...): the line diff."
    )


class CodeInterpreterPolicySerializer(serializers.Serializer):
    """A workspace's code interpreter (docs/sandbox.md). PATCH any subset."""

    enabled = serializers.BooleanField(required=False)
    require_approval = serializers.BooleanField(required=False)
    cpu_seconds = serializers.IntegerField(required=False, min_value=1, max_value=300)
    wall_seconds = serializers.IntegerField(required=False, min_value=1, max_value=600)
    memory_mb = serializers.IntegerField(required=False, min_value=64, max_value=8192)
    output_bytes = serializers.IntegerField(required=False, min_value=1024, max_value=1048576)
    max_processes = serializers.IntegerField(required=False, min_value=1, max_value=512)
