from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.skills.models import Tool
from apps.workflows.choices import RunSource, RunStatus
from apps.workflows.models import Workflow, WorkflowRun, WorkflowStepRun, WorkflowVersion


class WorkflowWriteSerializer(serializers.Serializer):
    """Create (name and definition required) or change (any subset) a workflow."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False)
    definition = serializers.JSONField(
        help_text='{"steps": [...]} (docs/workflows.md). Every change is a new version.'
    )
    note = serializers.CharField(max_length=200, allow_blank=True, required=False)


class WorkflowSerializer(serializers.ModelSerializer):
    published_version = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "definition",
            "version",
            "published_version",
            "created_at",
            "updated_at",
        ]

    def get_published_version(self, obj: Workflow) -> int | None:
        return obj.published_version.number if obj.published_version else None


class WorkflowVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = WorkflowVersion
        fields = ["number", "definition", "note", "created_at"]


class WorkflowStepDiffSerializer(serializers.Serializer):
    step_id = serializers.CharField()
    diff = serializers.CharField(help_text="A unified diff of the step's JSON.")


class WorkflowDiffSerializer(serializers.Serializer):
    before = serializers.IntegerField()
    after = serializers.IntegerField()
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = WorkflowStepDiffSerializer(many=True)


class WorkflowValidateSerializer(serializers.Serializer):
    definition = serializers.JSONField()


class WorkflowValidationErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="`steps.<id>.<field>`")
    message = serializers.CharField()


class WorkflowValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    # A response shape only (never validated): the name shadows Serializer.errors.
    errors = WorkflowValidationErrorSerializer(many=True)  # type: ignore[assignment]


class WorkflowPublishSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, required=False)


class WorkflowRestoreSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class WorkflowImportSerializer(serializers.Serializer):
    format = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False)
    definition = serializers.JSONField()


class WorkflowRunStartSerializer(serializers.Serializer):
    inputs = serializers.JSONField(required=False, default=dict)
    version = serializers.IntegerField(min_value=1, required=False)


class WorkflowDecisionSerializer(serializers.Serializer):
    step_id = serializers.CharField(max_length=64, required=False)
    comment = serializers.CharField(max_length=2000, allow_blank=True, required=False)


class WorkflowStepRunSerializer(serializers.ModelSerializer):
    error = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowStepRun
        fields = [
            "step_id",
            "step_type",
            "status",
            "inputs",
            "output",
            "error",
            "attempts",
            "reused",
            "input_tokens",
            "output_tokens",
            "cost",
            "started_at",
            "finished_at",
        ]

    def get_error(self, obj: WorkflowStepRun) -> dict[str, str] | None:
        if not obj.error_code:
            return None
        return {"code": obj.error_code, "message": obj.error_message}


class WorkflowRunSerializer(serializers.ModelSerializer):
    workflow_id = serializers.UUIDField(read_only=True)
    status = serializers.ChoiceField(choices=RunStatus.choices, read_only=True)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=RunSource.choices, read_only=True
    )
    error = serializers.SerializerMethodField()
    rerun_of = serializers.UUIDField(source="rerun_of_id", read_only=True, allow_null=True)
    stream_url = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow_id",
            "version_number",
            "status",
            "source",
            "inputs",
            "outputs",
            "error",
            "input_tokens",
            "output_tokens",
            "cost",
            "attempts",
            "rerun_of",
            "stream_url",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_error(self, obj: WorkflowRun) -> dict[str, str] | None:
        if obj.status not in (RunStatus.FAILED, RunStatus.CANCELLED) or not obj.error_code:
            return None
        return {"step_id": obj.error_step, "code": obj.error_code, "message": obj.error_message}

    def get_stream_url(self, obj: WorkflowRun) -> str:
        return f"/api/v1/workflows/runs/{obj.id}/stream"


class WorkflowRunDetailSerializer(WorkflowRunSerializer):
    steps = serializers.SerializerMethodField()

    class Meta(WorkflowRunSerializer.Meta):
        fields = [*WorkflowRunSerializer.Meta.fields, "steps"]

    @extend_schema_field(WorkflowStepRunSerializer(many=True))
    def get_steps(self, obj: WorkflowRun) -> list[dict[str, Any]]:
        rows = WorkflowStepRun.objects.filter(run=obj).order_by("id")
        return list(WorkflowStepRunSerializer(rows, many=True).data)


class WorkflowToolSerializer(serializers.ModelSerializer):
    """The registry tool exposing a workflow (see /api/v1/tools; attach it to agents)."""

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "parameters",
            "source",
            "requires_approval",
            "enabled",
            "created_at",
            "updated_at",
        ]
