from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.conversations.choices import Rating, RunStatus
from apps.conversations.models import Conversation, Message, MessageFeedback, Run, ShareLink

CONTENT_SCHEMA = {
    "oneOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["text", "image_url"]},
                    "text": {"type": "string"},
                    "image_url": {"type": "object", "properties": {"url": {"type": "string"}}},
                },
                "required": ["type"],
            },
        },
    ]
}


@extend_schema_field(CONTENT_SCHEMA)
class ContentField(serializers.JSONField):
    """A message content: a string or a list of text / image_url parts."""


class ConversationSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "agent_id",
            "title",
            "source",
            "created_at",
            "updated_at",
            "last_message_at",
        ]


class ConversationCreateSerializer(serializers.Serializer):
    agent_id = serializers.CharField(help_text="The agent's id or slug.")
    title = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class ConversationUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=True)


class MessageSerializer(serializers.ModelSerializer):
    content = ContentField()
    role = serializers.CharField(read_only=True, help_text="user, assistant, tool or system.")
    run_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "seq",
            "role",
            "content",
            "tool_calls",
            "tool_call_id",
            "name",
            "attachments",
            "citations",
            "usage",
            "metadata",
            "run_id",
            "created_at",
            "superseded_at",
        ]


class RunSerializer(serializers.ModelSerializer):
    conversation_id = serializers.UUIDField(read_only=True)
    agent_id = serializers.UUIDField(read_only=True)
    message_id = serializers.UUIDField(read_only=True, allow_null=True)
    answer_message_id = serializers.UUIDField(read_only=True, allow_null=True)
    usage = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    queued_content = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id",
            "conversation_id",
            "agent_id",
            "kind",
            "status",
            "message_id",
            "answer_message_id",
            "queued_content",
            "pending_approvals",
            "usage",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "input_tokens": {"type": "integer"},
                "output_tokens": {"type": "integer"},
            },
        }
    )
    def get_usage(self, obj: Run) -> dict[str, int]:
        return {"input_tokens": obj.input_tokens, "output_tokens": obj.output_tokens}

    @extend_schema_field(
        {
            "type": ["object", "null"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    )
    def get_error(self, obj: Run) -> dict[str, str] | None:
        if not obj.error_code:
            return None
        return {"code": obj.error_code, "message": obj.error_message}

    @extend_schema_field({**CONTENT_SCHEMA, "nullable": True})
    def get_queued_content(self, obj: Run) -> Any:
        if obj.status != RunStatus.QUEUED or not obj.pending_input:
            return None
        return obj.pending_input.get("content")


class SendMessageSerializer(serializers.Serializer):
    content = ContentField()
    attachments = serializers.ListField(child=serializers.DictField(), required=False, default=list)
    stream = serializers.BooleanField(
        default=False, help_text="Answer with the run's event stream (SSE) instead of 202."
    )
    running_run_behavior = serializers.ChoiceField(
        choices=["queue", "interrupt"],
        default="queue",
        help_text="When a run is active: queue this message (default) or cancel that run.",
    )
    background = serializers.BooleanField(
        default=False, help_text="Execute in a background worker rather than this server."
    )


class EditMessageSerializer(serializers.Serializer):
    content = ContentField()


class DecisionSerializer(serializers.Serializer):
    tool_call_id = serializers.CharField()
    approved = serializers.BooleanField()


class DecisionsSerializer(serializers.Serializer):
    decisions = DecisionSerializer(many=True)


class FeedbackSerializer(serializers.ModelSerializer):
    message_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = MessageFeedback
        fields = ["message_id", "rating", "comment", "updated_at"]


class FeedbackWriteSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=Rating.choices)
    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=4000)


class ShareSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ShareLink
        fields = ["id", "token", "url", "created_at", "revoked_at"]

    def get_url(self, obj: ShareLink) -> str:
        return f"/api/v1/shared/{obj.token}"


class SharedMessageSerializer(serializers.ModelSerializer):
    content = ContentField()
    role = serializers.CharField(read_only=True, help_text="user or assistant.")

    class Meta:
        model = Message
        fields = ["id", "seq", "role", "content", "attachments", "citations", "created_at"]


class SharedConversationSerializer(serializers.Serializer):
    title = serializers.CharField()
    agent_name = serializers.CharField()
    messages = SharedMessageSerializer(many=True)


class StreamTicketSerializer(serializers.Serializer):
    ticket = serializers.CharField()
    expires_at = serializers.DateTimeField()
    stream_url = serializers.CharField()
