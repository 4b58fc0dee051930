from typing import Any

from rest_framework import serializers

from apps.tasks.choices import (
    ConversationMode,
    ExecutionStatus,
    ExecutionTrigger,
    MissedPolicy,
    OverlapPolicy,
    ScheduleKind,
)
from apps.tasks.models import ScheduledTask, TaskExecution


class TaskWriteSerializer(serializers.Serializer):
    """Create (all required fields) or change (any subset) a task."""

    agent_id = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    prompt_template = serializers.CharField(
        max_length=20_000,
        trim_whitespace=False,
        help_text="The prompt; `$date`, `$time`, `$datetime`, `$due_at`, `$timezone`, "
        "`$task_name`, `$previous_answer` are replaced (write `$$` for a dollar sign).",
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
    agent_id = serializers.UUIDField(read_only=True)
    conversation_id = serializers.UUIDField(read_only=True, allow_null=True)
    owner_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = ScheduledTask
        fields = [
            "id",
            "agent_id",
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
    status = serializers.ChoiceField(choices=ExecutionStatus.choices, read_only=True)
    trigger = serializers.ChoiceField(choices=ExecutionTrigger.choices, read_only=True)
    duration_ms = serializers.SerializerMethodField()

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
