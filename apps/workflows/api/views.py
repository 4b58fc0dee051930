import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import orjson
from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.asyncview import AsyncApiView
from apps.core.api.base import ApiView
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.core.exceptions import ApplicationError, ValidationFailed
from apps.users.actors import get_actor
from apps.workflows.api.serializers import (
    WorkflowDecisionSerializer,
    WorkflowDiffSerializer,
    WorkflowImportSerializer,
    WorkflowPublishSerializer,
    WorkflowRestoreSerializer,
    WorkflowRunDetailSerializer,
    WorkflowRunSerializer,
    WorkflowRunStartSerializer,
    WorkflowSerializer,
    WorkflowToolSerializer,
    WorkflowValidateSerializer,
    WorkflowValidationResultSerializer,
    WorkflowVersionSerializer,
    WorkflowWriteSerializer,
)
from apps.workflows.choices import RUN_TERMINAL, RunSource, RunStatus
from apps.workflows.exceptions import InvalidCursor
from apps.workflows.models import WorkflowEvent, WorkflowRun
from apps.workflows.selectors import (
    access_run,
    access_version,
    access_workflow,
    run_events_after,
    run_list,
    workflow_list,
    workflow_versions,
)
from apps.workflows.services import (
    definition_validate,
    run_cancel,
    run_decide,
    run_rerun,
    run_start,
    version_diff,
    workflow_create,
    workflow_delete,
    workflow_export,
    workflow_import,
    workflow_publish,
    workflow_restore,
    workflow_tool_delete,
    workflow_tool_save,
    workflow_update,
)

TAGS = ["workflows"]
RUN_TAGS = ["workflow runs"]
AREA = "tasks"  # workflows share the tasks scope area (docs/auth.md)


class WorkflowListView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_list", responses=WorkflowSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request) -> Response:
        rows = workflow_list(actor=get_actor(request))
        return self.paginate(request, rows, lambda page: WorkflowSerializer(page, many=True).data)

    @extend_schema(
        operation_id="workflows_create",
        request=WorkflowWriteSerializer,
        responses={201: WorkflowSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = WorkflowWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        workflow = workflow_create(
            actor=get_actor(request),
            name=data["name"],
            description=data.get("description", ""),
            definition=data["definition"],
        )
        return Response(WorkflowSerializer(workflow).data, status=201)


class WorkflowDetailView(ApiView):
    scope_area = AREA

    @extend_schema(operation_id="workflows_get", responses=WorkflowSerializer, tags=TAGS)
    def get(self, request: Request, workflow_id: uuid.UUID) -> Response:
        workflow = access_workflow(actor=get_actor(request), workflow_id=workflow_id)
        return Response(WorkflowSerializer(workflow).data)

    @extend_schema(
        operation_id="workflows_update",
        request=WorkflowWriteSerializer(partial=True),
        responses=WorkflowSerializer,
        tags=TAGS,
        description="Change the name, description or definition (a new version).",
    )
    def patch(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        serializer = WorkflowWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        workflow = workflow_update(
            actor=actor,
            workflow=workflow,
            name=data.get("name"),
            description=data.get("description"),
            definition=data.get("definition"),
            note=data.get("note", ""),
        )
        return Response(WorkflowSerializer(workflow).data)

    @extend_schema(operation_id="workflows_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow_delete(actor=actor, workflow=access_workflow(actor=actor, workflow_id=workflow_id))
        return Response(status=204)


class VersionListView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_versions_list",
        responses=WorkflowVersionSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, workflow_id: uuid.UUID) -> Response:
        workflow = access_workflow(actor=get_actor(request), workflow_id=workflow_id)
        return self.paginate(
            request,
            workflow_versions(workflow=workflow),
            lambda page: WorkflowVersionSerializer(page, many=True).data,
            ordering="-number",
        )


class VersionDetailView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_versions_get", responses=WorkflowVersionSerializer, tags=TAGS
    )
    def get(self, request: Request, workflow_id: uuid.UUID, number: int) -> Response:
        workflow = access_workflow(actor=get_actor(request), workflow_id=workflow_id)
        return Response(
            WorkflowVersionSerializer(access_version(workflow=workflow, number=number)).data
        )


class VersionDiffView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_versions_diff",
        parameters=[
            OpenApiParameter("before", int, required=True),
            OpenApiParameter("after", int, required=True),
        ],
        responses=WorkflowDiffSerializer,
        tags=TAGS,
    )
    def get(self, request: Request, workflow_id: uuid.UUID) -> Response:
        workflow = access_workflow(actor=get_actor(request), workflow_id=workflow_id)
        numbers = {}
        for name in ("before", "after"):
            try:
                numbers[name] = int(request.query_params.get(name, ""))
            except ValueError as exc:
                raise ValidationFailed(f"{name} is a version number.", field=name) from exc
        before = access_version(workflow=workflow, number=numbers["before"])
        after = access_version(workflow=workflow, number=numbers["after"])
        return Response(version_diff(before=before, after=after))


class RestoreView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_restore",
        request=WorkflowRestoreSerializer,
        responses=WorkflowSerializer,
        tags=TAGS,
        description="Make an earlier version the draft again (saved as a new version).",
    )
    def post(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        serializer = WorkflowRestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = serializer.validated_data["version"]
        return Response(
            WorkflowSerializer(workflow_restore(actor=actor, workflow=workflow, number=number)).data
        )


class PublishView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_publish",
        request=WorkflowPublishSerializer,
        responses=WorkflowSerializer,
        tags=TAGS,
        description="Publish a version (default: the draft); runs use the published version.",
    )
    def post(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        serializer = WorkflowPublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = serializer.validated_data.get("version")
        return Response(
            WorkflowSerializer(workflow_publish(actor=actor, workflow=workflow, number=number)).data
        )


class ValidateView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_validate",
        request=WorkflowValidateSerializer,
        responses=WorkflowValidationResultSerializer,
        tags=TAGS,
        description="Check a definition without saving it: `valid` and the errors, each "
        "naming its step and field (`steps.<id>.<field>`).",
    )
    def post(self, request: Request) -> Response:
        serializer = WorkflowValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            definition_validate(
                actor=get_actor(request), definition=serializer.validated_data["definition"]
            )
        except ApplicationError as exc:
            if exc.status != 400:
                raise
            errors = exc.details or [{"field": None, "message": exc.message}]
            return Response({"valid": False, "errors": errors})
        return Response({"valid": True, "errors": []})


class ExportView(ApiView):
    scope_area = AREA

    @extend_schema(operation_id="workflows_export", responses=WorkflowImportSerializer, tags=TAGS)
    def get(self, request: Request, workflow_id: uuid.UUID) -> Response:
        workflow = access_workflow(actor=get_actor(request), workflow_id=workflow_id)
        return Response(workflow_export(workflow=workflow))


class ImportView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_import",
        request=WorkflowImportSerializer,
        responses={201: WorkflowSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        workflow = workflow_import(actor=get_actor(request), document=request.data)
        return Response(WorkflowSerializer(workflow).data, status=201)


class WorkflowToolView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_tool_save",
        request=None,
        responses={201: WorkflowToolSerializer, 200: WorkflowToolSerializer},
        tags=TAGS,
        description="Expose the published workflow as a tool agents can be given (201), or "
        "refresh its tool (200): name and description from the workflow, parameters from "
        "the start step's inputs. A call starts a run (source `agent_tool`) and returns its "
        "outputs. 409 `workflow_not_published` without a published version.",
    )
    def post(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        tool, created = workflow_tool_save(actor=actor, workflow=workflow)
        return Response(WorkflowToolSerializer(tool).data, status=201 if created else 200)

    @extend_schema(operation_id="workflows_tool_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        workflow_tool_delete(actor=actor, workflow=workflow)
        return Response(status=204)


class RunStartView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_runs_start",
        request=WorkflowRunStartSerializer,
        responses={202: WorkflowRunSerializer},
        tags=RUN_TAGS,
        description="Start a run of the published version (or `version`) with `inputs`.",
    )
    def post(self, request: Request, workflow_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        workflow = access_workflow(actor=actor, workflow_id=workflow_id)
        serializer = WorkflowRunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = run_start(
            actor=actor,
            workflow=workflow,
            inputs=data.get("inputs", {}),
            version=data.get("version"),
        )
        run.refresh_from_db()
        return Response(WorkflowRunSerializer(run).data, status=202)


class RunListView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_runs_list",
        parameters=[
            OpenApiParameter("workflow_id", OpenApiTypes.UUID),
            OpenApiParameter("status", str, enum=RunStatus.values),
            OpenApiParameter("source", str, enum=RunSource.values),
        ],
        responses=WorkflowRunSerializer(many=True),
        tags=RUN_TAGS,
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        workflow_id = None
        if params.get("workflow_id"):
            try:
                workflow_id = uuid.UUID(params["workflow_id"])
            except ValueError as exc:
                raise ValidationFailed("workflow_id is a UUID.", field="workflow_id") from exc
        status = params.get("status") or None
        if status is not None and status not in RunStatus.values:
            raise ValidationFailed(
                f"status is one of {', '.join(RunStatus.values)}.", field="status"
            )
        source = params.get("source") or None
        if source is not None and source not in RunSource.values:
            raise ValidationFailed(
                f"source is one of {', '.join(RunSource.values)}.", field="source"
            )
        runs = run_list(
            actor=get_actor(request), workflow_id=workflow_id, status=status, source=source
        )
        return self.paginate(
            request, runs, lambda page: WorkflowRunSerializer(page, many=True).data
        )


class RunDetailView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_runs_get", responses=WorkflowRunDetailSerializer, tags=RUN_TAGS
    )
    def get(self, request: Request, run_id: uuid.UUID) -> Response:
        run = access_run(actor=get_actor(request), run_id=run_id)
        return Response(WorkflowRunDetailSerializer(run).data)


class RunCancelView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_runs_cancel",
        request=None,
        responses=WorkflowRunSerializer,
        tags=RUN_TAGS,
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        run = run_cancel(actor=actor, run=access_run(actor=actor, run_id=run_id))
        return Response(WorkflowRunSerializer(run).data)


class RunRerunView(ApiView):
    scope_area = AREA

    @extend_schema(
        operation_id="workflows_runs_rerun",
        request=None,
        responses={202: WorkflowRunSerializer},
        tags=RUN_TAGS,
        description="A new run from the failed step: succeeded steps keep their outputs.",
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        new = run_rerun(actor=actor, run=access_run(actor=actor, run_id=run_id))
        new.refresh_from_db()
        return Response(WorkflowRunSerializer(new).data, status=202)


class _DecisionView(ApiView):
    scope_area = AREA
    approved = True

    def decide(self, request: Request, run_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        run = access_run(actor=actor, run_id=run_id)
        serializer = WorkflowDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = run_decide(
            actor=actor,
            run=run,
            approved=self.approved,
            step_id=data.get("step_id"),
            comment=data.get("comment", ""),
        )
        return Response(WorkflowRunSerializer(run).data)


class RunApproveView(_DecisionView):
    approved = True

    @extend_schema(
        operation_id="workflows_runs_approve",
        request=WorkflowDecisionSerializer,
        responses=WorkflowRunSerializer,
        tags=RUN_TAGS,
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        return self.decide(request, run_id)


class RunRejectView(_DecisionView):
    approved = False

    @extend_schema(
        operation_id="workflows_runs_reject",
        request=WorkflowDecisionSerializer,
        responses=WorkflowRunSerializer,
        tags=RUN_TAGS,
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        return self.decide(request, run_id)


# --- the event stream ---------------------------------------------------------------------

STREAM_POLL_SECONDS = 0.25
STREAM_HEARTBEAT_SECONDS = 15.0
STREAM_MAX_SECONDS = 3600.0


def parse_cursor(header: str | None, param: str | None) -> int:
    """The resume cursor: `Last-Event-ID` wins over `?cursor=`; -1 (the default) replays
    everything. Raises InvalidCursor."""
    raw = header if header not in (None, "") else param
    if raw is None or raw == "":
        return -1
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidCursor() from exc
    if value < -1:
        raise InvalidCursor()
    return value


def sse_frame(run_id: uuid.UUID, event: WorkflowEvent) -> bytes:
    payload = {
        "type": event.type,
        "cursor": event.cursor,
        "workflow_run_id": str(run_id),
        "ts": event.created_at.isoformat(),
        "data": event.data,
    }
    body = orjson.dumps(payload).decode()
    return f"id: {event.cursor}\nevent: {event.type}\ndata: {body}\n\n".encode()


def _run_status(run_id: uuid.UUID) -> str:
    return str(WorkflowRun.objects.values_list("status", flat=True).get(id=run_id))


async def run_event_stream(run_id: uuid.UUID, after: int) -> AsyncIterator[bytes]:
    """The run's logged events after `after`, then new ones as they are logged (each
    once, in cursor order), until the run has ended and its last event was sent."""
    yield b"retry: 1000\n\n"
    events_after = sync_to_async(run_events_after)
    status_of = sync_to_async(_run_status)
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_MAX_SECONDS:
        # The status is read before the log: a run that had ended has all its events.
        status = await status_of(run_id)
        events = await events_after(run_id=run_id, after=after)
        for event in events:
            yield sse_frame(run_id, event)
            after = event.cursor
            last_sent = time.monotonic()
        if not events and status in RUN_TERMINAL:
            return
        if time.monotonic() - last_sent >= STREAM_HEARTBEAT_SECONDS:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        if not events:
            await asyncio.sleep(STREAM_POLL_SECONDS)


class EventStreamRenderer(EnvelopeJSONRenderer):
    """Lets the stream endpoint accept `Accept: text/event-stream` (errors stay JSON)."""

    media_type = "text/event-stream"
    format = "sse"


class RunStreamView(AsyncApiView):
    scope_area = AREA
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="workflows_runs_stream",
        parameters=[
            OpenApiParameter(
                "cursor",
                int,
                description="Resume after this cursor (-1, the default: from the start). "
                "`Last-Event-ID` wins.",
            ),
            OpenApiParameter("Last-Event-ID", str, location=OpenApiParameter.HEADER),
        ],
        responses={
            200: OpenApiResponse(
                response=OpenApiTypes.STR,
                description="`text/event-stream` of workflow run events (docs/workflows.md).",
            )
        },
        tags=RUN_TAGS,
    )
    def get(self, request: Request, run_id: uuid.UUID) -> StreamingHttpResponse:
        """The run's events after the cursor, live until the run ends."""
        run = access_run(actor=get_actor(request), run_id=run_id)
        cursor = parse_cursor(
            request.headers.get("Last-Event-ID"), request.query_params.get("cursor")
        )
        response = StreamingHttpResponse(
            run_event_stream(run.id, cursor), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
