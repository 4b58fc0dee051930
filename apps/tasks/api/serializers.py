from typing import Any

from rest_framework import serializers

from apps.tasks.choices import (
    ConversationMode,
    DeliveryStatus,
    ExecutionStatus,
    ExecutionTrigger,
    MissedPolicy,
    OverlapPolicy,
    ScheduleKind,
)
from apps.tasks.models import (
    InboundTrigger,
    ScheduledTask,
    TaskExecution,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)


class TaskWriteSerializer(serializers.Serializer):
    """Create (all required fields) or change (any subset) a task."""

    agent_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="The agent to run (or give workflow_id)."
    )
    workflow_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The workflow to run (its published version), instead of an agent.",
    )
    workflow_inputs = serializers.JSONField(
        required=False, help_text="The workflow run's inputs (a workflow task)."
    )
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    prompt_template = serializers.CharField(
        max_length=20_000,
        trim_whitespace=False,
        required=False,
        help_text="An agent task's prompt (required for one); `$date`, `$time`, "
        "`$datetime`, `$due_at`, `$timezone`, `$task_name`, `$previous_answer` are "
        "replaced (write `$$` for a dollar sign).",
    )
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    cron = serializers.CharField(max_length=120, allow_blank=True, required=False)
    interval_seconds = serializers.IntegerField(
        min_value=60, max_value=366 * 86400, required=False, allow_null=True
    )
    timezone = serializers.CharField(max_length=64, required=False)
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    end_at = serializers.DateTimeField(required=False, allow_null=True)
    conversation_mode = serializers.ChoiceField(choices=ConversationMode.choices, required=False)
    overlap_policy = serializers.ChoiceField(choices=OverlapPolicy.choices, required=False)
    missed_policy = serializers.ChoiceField(choices=MissedPolicy.choices, required=False)
    time_limit_seconds = serializers.IntegerField(min_value=10, max_value=86400, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)
    retry_backoff_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    max_consecutive_failures = serializers.IntegerField(min_value=1, max_value=100, required=False)


class TaskSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    workflow_id = serializers.UUIDField(read_only=True, allow_null=True)
    conversation_id = serializers.UUIDField(read_only=True, allow_null=True)
    owner_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = ScheduledTask
        fields = [
            "id",
            "agent_id",
            "workflow_id",
            "workflow_inputs",
            "owner_id",
            "name",
            "description",
            "prompt_template",
            "schedule_kind",
            "run_at",
            "cron",
            "interval_seconds",
            "timezone",
            "start_at",
            "end_at",
            "conversation_mode",
            "conversation_id",
            "overlap_policy",
            "missed_policy",
            "time_limit_seconds",
            "max_retries",
            "retry_backoff_seconds",
            "max_consecutive_failures",
            "enabled",
            "paused_reason",
            "consecutive_failures",
            "next_run_at",
            "last_run_at",
            "archived_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ExecutionSerializer(serializers.ModelSerializer):
    task_id = serializers.UUIDField(read_only=True)
    run_id = serializers.UUIDField(read_only=True, allow_null=True)
    conversation_id = serializers.UUIDField(read_only=True, allow_null=True)
    workflow_run_id = serializers.UUIDField(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, read_only=True)
    trigger = serializers.ChoiceField(choices=ExecutionTrigger.choices, read_only=True)
    duration_ms = serializers.SerializerMethodField()
    reason = serializers.CharField(
        source="error_message", read_only=True, help_text="Why it ended (or waits) this way."
    )

    class Meta:
        model = TaskExecution
        fields = [
            "id",
            "task_id",
            "due_at",
            "trigger",
            "status",
            "attempts",
            "run_id",
            "conversation_id",
            "workflow_run_id",
            "prompt",
            "answer",
            "error_code",
            "reason",
            "started_at",
            "finished_at",
            "duration_ms",
            "created_at",
        ]
        read_only_fields = fields

    def get_duration_ms(self, obj: TaskExecution) -> int | None:
        if obj.started_at is None or obj.finished_at is None:
            return None
        return int((obj.finished_at - obj.started_at).total_seconds() * 1000)


def changed_values(serializer: serializers.Serializer) -> dict[str, Any]:
    return dict(serializer.validated_data)


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    description = serializers.CharField(max_length=500, allow_blank=True, required=False)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        max_length=50,
        help_text="Event types to receive (see docs/webhooks.md), or `*` for all.",
    )
    enabled = serializers.BooleanField(required=False)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as the API shows it: never its secret."""

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "disabled_reason",
            "consecutive_failures",
            "last_success_at",
            "last_failure_at",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (`whsec_...`): shown only this once."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class SecretRotateSerializer(serializers.Serializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=7 * 86400,
        default=86400,
        help_text="How long deliveries are also signed with the old secret.",
    )


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="The new secret: shown only once.")
    previous_secret_expires_at = serializers.DateTimeField(read_only=True)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "requested_at",
            "status_code",
            "latency_ms",
            "response_excerpt",
            "error",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    endpoint_id = serializers.UUIDField(read_only=True)
    event_id = serializers.UUIDField(read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, read_only=True)
    reason = serializers.CharField(source="error_message", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint_id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "error_code",
            "reason",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    payload = serializers.JSONField(source="event.payload", read_only=True)
    attempts_log = WebhookAttemptSerializer(source="log", many=True, read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempts_log"]
        read_only_fields = fields


class TriggerWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    agent_id = serializers.UUIDField(required=False, allow_null=True)
    task_id = serializers.UUIDField(required=False, allow_null=True)
    workflow_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="Start this workflow (the body is its inputs)."
    )
    prompt_template = serializers.CharField(
        max_length=20_000,
        allow_blank=True,
        required=False,
        trim_whitespace=False,
        help_text="For an agent: the prompt; `${body.path.to.field}` inserts a field of the "
        "JSON body, `$body` all of it.",
    )
    enabled = serializers.BooleanField(required=False)


class TriggerSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True, allow_null=True)
    task_id = serializers.UUIDField(read_only=True, allow_null=True)
    workflow_id = serializers.UUIDField(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField(help_text="Where to POST (see docs/tasks.md).")

    class Meta:
        model = InboundTrigger
        fields = [
            "id",
            "name",
            "agent_id",
            "task_id",
            "workflow_id",
            "prompt_template",
            "enabled",
            "url",
            "last_called_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_url(self, obj: InboundTrigger) -> str:
        return f"/api/v1/triggers/{obj.id}/fire"


class TriggerCreatedSerializer(TriggerSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The trigger's secret (`whsec_...`): a bearer token, or the key of Standard "
        "Webhooks signatures. Shown only this once.",
    )

    class Meta(TriggerSerializer.Meta):
        fields = [*TriggerSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class TriggerFiredSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(allow_null=True, help_text="Null for a workflow trigger.")
    conversation_id = serializers.UUIDField(allow_null=True)
    workflow_run_id = serializers.UUIDField(
        allow_null=True, required=False, help_text="The workflow run (a workflow trigger)."
    )
    status = serializers.CharField(help_text="The run's status.")
    status_url = serializers.CharField(help_text="GET it (with an API key) to follow the run.")
    answer = serializers.CharField(
        allow_null=True, help_text="The answer, when the caller waited and the run completed."
    )
