import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.tasks.api.serializers import (
    ExecutionSerializer,
    TaskSerializer,
    TaskWriteSerializer,
    changed_values,
)
from apps.tasks.selectors import access_execution, access_task, execution_list, task_list
from apps.tasks.services import (
    task_archive,
    task_create,
    task_run_now,
    task_set_enabled,
    task_update,
)
from apps.users.actors import get_actor

TAGS = ["tasks"]


class TaskListView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="tasks_list",
        parameters=[
            OpenApiParameter("archived", OpenApiTypes.BOOL, description="List deleted tasks.")
        ],
        responses=TaskSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        archived = request.query_params.get("archived", "").lower() in {"1", "true", "yes"}
        qs = task_list(actor=get_actor(request), archived=archived)
        return self.paginate(request, qs, lambda page: TaskSerializer(page, many=True).data)

    @extend_schema(
        operation_id="tasks_create",
        request=TaskWriteSerializer,
        responses={201: TaskSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = TaskWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = changed_values(serializer)
        agent_id = values.pop("agent_id", None)
        workflow_id = values.pop("workflow_id", None)
        task = task_create(
            actor=get_actor(request), agent_id=agent_id, workflow_id=workflow_id, values=values
        )
        return Response(TaskSerializer(task).data, status=201)


class TaskDetailView(ApiView):
    scope_area = "tasks"

    @extend_schema(operation_id="tasks_get", responses=TaskSerializer, tags=TAGS)
    def get(self, request: Request, task_id: uuid.UUID) -> Response:
        return Response(TaskSerializer(access_task(actor=get_actor(request), task_id=task_id)).data)

    @extend_schema(
        operation_id="tasks_update",
        request=TaskWriteSerializer(partial=True),
        responses=TaskSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, task_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        task = access_task(actor=actor, task_id=task_id)
        serializer = TaskWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        task = task_update(actor=actor, task=task, values=changed_values(serializer))
        return Response(TaskSerializer(task).data)

    @extend_schema(operation_id="tasks_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, task_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        task_archive(actor=actor, task=access_task(actor=actor, task_id=task_id))
        return Response(status=204)


class _TaskEnabledView(ApiView):
    scope_area = "tasks"
    enabled = True

    def post(self, request: Request, task_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        task = access_task(actor=actor, task_id=task_id)
        task = task_set_enabled(actor=actor, task=task, enabled=self.enabled)
        return Response(TaskSerializer(task).data)


class TaskEnableView(_TaskEnabledView):
    enabled = True

    @extend_schema(operation_id="tasks_enable", request=None, responses=TaskSerializer, tags=TAGS)
    def post(self, request: Request, task_id: uuid.UUID) -> Response:
        return super().post(request, task_id)


class TaskDisableView(_TaskEnabledView):
    enabled = False

    @extend_schema(operation_id="tasks_disable", request=None, responses=TaskSerializer, tags=TAGS)
    def post(self, request: Request, task_id: uuid.UUID) -> Response:
        return super().post(request, task_id)


class TaskRunNowView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="tasks_run_now",
        request=None,
        responses={202: ExecutionSerializer},
        tags=TAGS,
        description="Execute the task now, outside its schedule (its overlap policy applies).",
    )
    def post(self, request: Request, task_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        execution = task_run_now(actor=actor, task=access_task(actor=actor, task_id=task_id))
        execution.refresh_from_db()
        return Response(ExecutionSerializer(execution).data, status=202)


class ExecutionListView(ApiView):
    scope_area = "tasks"

    @extend_schema(
        operation_id="tasks_executions_list",
        responses=ExecutionSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, task_id: uuid.UUID) -> Response:
        task = access_task(actor=get_actor(request), task_id=task_id)
        return self.paginate(
            request, execution_list(task=task), lambda p: ExecutionSerializer(p, many=True).data
        )


class ExecutionDetailView(ApiView):
    scope_area = "tasks"

    @extend_schema(operation_id="tasks_executions_get", responses=ExecutionSerializer, tags=TAGS)
    def get(self, request: Request, task_id: uuid.UUID, execution_id: uuid.UUID) -> Response:
        task = access_task(actor=get_actor(request), task_id=task_id)
        execution = access_execution(task=task, execution_id=execution_id)
        return Response(ExecutionSerializer(execution).data)
