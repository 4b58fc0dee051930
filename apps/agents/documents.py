"""The agent export document (GET /agents/{id}/export, POST /agents/import) and the
configuration fields it shares with agent create and update: one definition of what a
valid document is, for the REST API (which also draws its OpenAPI schema from it) and the
console's import page.
"""

import re
from collections.abc import Iterable
from typing import Any

from rest_framework import serializers

from apps.agents.choices import AgentBuiltinTool, MemoryMode
from apps.agents.selectors import EXPORT_FORMAT, EXPORT_FORMAT_VERSION

TOOL_NAME_RE = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_REFERENCES = 100


def unique_items(values: list[Any], what: str) -> list[Any]:
    if len(set(values)) != len(values):
        raise serializers.ValidationError(f"Each {what} may appear only once.")
    return values


class AgentConfigSerializer(serializers.Serializer):
    """The configuration fields shared by create/update and import."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    avatar = serializers.CharField(
        max_length=2000,
        allow_blank=True,
        required=False,
        help_text="An http(s) image URL, or a short emoji / text of at most 16 characters.",
    )
    system_prompt = serializers.CharField(
        max_length=100_000, allow_blank=True, trim_whitespace=False, required=False
    )
    temperature = serializers.FloatField(
        min_value=0.0, max_value=2.0, allow_null=True, required=False
    )
    max_tokens = serializers.IntegerField(
        min_value=1, max_value=1_000_000, allow_null=True, required=False
    )
    reasoning = serializers.BooleanField(required=False)
    builtin_tools = serializers.ListField(
        child=serializers.ChoiceField(choices=AgentBuiltinTool.choices),
        max_length=len(AgentBuiltinTool.choices),
        required=False,
    )
    memory_mode = serializers.ChoiceField(choices=MemoryMode.choices, required=False)
    max_loops = serializers.IntegerField(min_value=1, max_value=100, required=False)
    wall_clock_seconds = serializers.IntegerField(min_value=10, max_value=3600, required=False)
    suggestions_enabled = serializers.BooleanField(required=False)
    opening_message = serializers.CharField(max_length=4000, allow_blank=True, required=False)
    starter_questions = serializers.ListField(
        child=serializers.CharField(max_length=300), max_length=10, required=False
    )
    tools_requiring_approval = serializers.ListField(
        child=serializers.RegexField(
            TOOL_NAME_RE,
            error_messages={
                # No braces: DRF formats this message with str.format.
                "invalid": "Not a tool name: 1 to 64 letters, digits, _ or -."
            },
        ),
        max_length=MAX_REFERENCES,
        required=False,
        help_text="Names (as the model sees them) of tools whose calls wait for approval.",
    )

    def validate_avatar(self, value: str) -> str:
        if "://" in value or value.startswith("//"):
            if not re.match(r"^https?://[^\s/]+\S*$", value):
                raise serializers.ValidationError("Only an http or https URL is accepted.")
        elif len(value) > 16:
            raise serializers.ValidationError("Use an http(s) URL or at most 16 characters.")
        return value

    def validate_builtin_tools(self, value: list[str]) -> list[str]:
        return unique_items(value, "built-in tool")

    def validate_tools_requiring_approval(self, value: list[str]) -> list[str]:
        return unique_items(value, "tool name")


class ReferenceSerializer(serializers.Serializer):
    id = serializers.UUIDField(required=False)
    name = serializers.CharField(max_length=200, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give an id or a name.")
        return attrs


class SkillVersionReferenceSerializer(ReferenceSerializer):
    number = serializers.IntegerField(min_value=1, required=False)


class AgentReferenceSerializer(serializers.Serializer):
    id = serializers.UUIDField(required=False)
    slug = serializers.CharField(max_length=100, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give an id or a slug.")
        return attrs


class AgentDocumentSerializer(AgentConfigSerializer):
    slug = serializers.CharField(max_length=100, allow_blank=True, required=False)
    model = ReferenceSerializer(allow_null=True, required=False)
    tools = serializers.ListField(
        child=ReferenceSerializer(), required=False, max_length=MAX_REFERENCES
    )
    skill_versions = serializers.ListField(
        child=SkillVersionReferenceSerializer(), required=False, max_length=MAX_REFERENCES
    )
    knowledge_bases = serializers.ListField(
        child=ReferenceSerializer(), required=False, max_length=MAX_REFERENCES
    )
    subagents = serializers.ListField(
        child=AgentReferenceSerializer(), required=False, max_length=20
    )


class AgentImportSerializer(serializers.Serializer):
    """An agent export document (GET /agents/{id}/export) to create an agent from."""

    format = serializers.ChoiceField(choices=[EXPORT_FORMAT])
    format_version = serializers.ChoiceField(choices=[EXPORT_FORMAT_VERSION])
    agent = AgentDocumentSerializer()


def _flatten(errors: Any, where: str) -> list[str]:
    """DRF's nested errors as `path: message` lines (list items by index: DRF's ListField
    reports them in a dict keyed by position, a many=True serializer in a list)."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(errors, dict):
        items = errors.items()
    elif isinstance(errors, list) and any(isinstance(e, dict | list) for e in errors):
        items = enumerate(errors)
    elif isinstance(errors, list):
        return [f"{where}: {e}" if where else str(e) for e in errors]
    else:
        return [f"{where}: {errors}" if where else str(errors)]
    lines = []
    for key, value in items:
        if key == "non_field_errors":
            path = where
        elif isinstance(key, int):
            path = f"{where}[{key}]"
        else:
            path = f"{where}.{key}" if where else str(key)
        lines += _flatten(value, path)
    return lines


def agent_document_check(document: Any) -> tuple[dict[str, Any], list[str]]:
    """An export document validated as the import endpoint validates it: its cleaned
    values, or what is wrong with it, one message per field, each named by its path
    (`agent.temperature`, `agent.tools[2].id`)."""
    if not isinstance(document, dict):
        return {}, ["The file is not a JSON object."]
    serializer = AgentImportSerializer(data=document)
    if not serializer.is_valid():
        return {}, _flatten(serializer.errors, "")
    return dict(serializer.validated_data), []
