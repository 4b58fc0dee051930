import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.agents.api.serializers import (
    AgentJobSerializer,
    AgentSerializer,
    AgentVersionSerializer,
    AgentWriteSerializer,
    CodeInterpreterPolicySerializer,
    DuplicateSerializer,
    FieldChangeSerializer,
    GenerateAgentJobSerializer,
    OptimizePromptJobSerializer,
    SharingSerializer,
    VersionDiffQuerySerializer,
    sharing_data,
)
from apps.agents.choices import AgentJobKind
from apps.agents.documents import AgentImportSerializer
from apps.agents.models import Agent
from apps.agents.selectors import (
    access_agent,
    access_agent_job,
    access_agent_version,
    agent_export,
    agent_grants,
    agent_job_list,
    agent_list,
    agent_version_diff,
    agent_versions,
    agents_reference_ids,
    code_interpreter_policy,
)
from apps.agents.services import (
    GrantInput,
    agent_archive,
    agent_create,
    agent_duplicate,
    agent_import,
    agent_job_cancel,
    agent_job_submit,
    agent_purge,
    agent_set_sharing,
    agent_unarchive,
    agent_update,
    agent_version_restore,
    code_interpreter_policy_update,
)
from apps.core.api.base import ApiView
from apps.core.api.fast import serialize_rows, values_rows
from apps.core.api.ratelimit import client_address
from apps.core.api.schema import error_doc
from apps.users.actors import Actor, get_actor
from apps.users.exceptions import WorkspaceNotFound
from apps.users.selectors import access_workspace

TAGS = ["agents"]
JOB_TAGS = ["agent jobs"]


def _agents_data(actor: Actor, agents: list[Any]) -> list[dict[str, Any]]:
    """AgentSerializer's output for these agents: their references in one query, the
    serializer's plan built once per process (apps.core.api.fast)."""
    references = agents_reference_ids(agent_ids=[agent.pk for agent in agents])
    return serialize_rows(
        AgentSerializer, agents, context={"actor": actor, "references": references}
    )


def _agent_data(actor: Actor, agent: Agent) -> Any:
    return _agents_data(actor, [agent])[0]


def _fresh(actor: Actor, agent_id: uuid.UUID) -> Agent:
    """The agent re-read after a write (annotations and references up to date)."""
    return access_agent(actor=actor, agent_id=agent_id)


class AgentListView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_list",
        parameters=[
            OpenApiParameter(
                "archived", OpenApiTypes.BOOL, description="List archived agents instead."
            ),
            OpenApiParameter("search", OpenApiTypes.STR, description="In name and description."),
        ],
        responses=AgentSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        actor = get_actor(request)
        archived = request.query_params.get("archived", "").lower() in {"1", "true", "yes"}
        search = request.query_params.get("search", "").strip()[:200]
        # Only created_by_id is output: no join to the users; rows, not instances.
        qs = values_rows(
            agent_list(actor=actor, archived=archived, search=search).select_related(None)
        )
        return self.paginate(request, qs, lambda page: _agents_data(actor, page))

    @extend_schema(
        operation_id="agents_create",
        request=AgentWriteSerializer,
        responses={201: AgentSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        serializer = AgentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = dict(serializer.validated_data)
        slug = values.pop("slug", None)
        visibility = values.pop("visibility", "private")
        agent = agent_create(actor=actor, values=values, slug=slug, visibility=visibility)
        return Response(_agent_data(actor, _fresh(actor, agent.pk)), status=201)


class AgentDetailView(ApiView):
    scope_area = "agents"

    @extend_schema(operation_id="agents_get", responses=AgentSerializer, tags=TAGS)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        return Response(_agent_data(actor, access_agent(actor=actor, agent_id=agent_id)))

    @extend_schema(
        operation_id="agents_update",
        request=AgentWriteSerializer,
        responses=AgentSerializer,
        tags=TAGS,
        description="Change some fields. A configuration change creates a new version.",
    )
    def patch(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        agent = access_agent(actor=actor, agent_id=agent_id)
        serializer = AgentWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        agent_update(actor=actor, agent=agent, values=dict(serializer.validated_data))
        return Response(_agent_data(actor, _fresh(actor, agent.pk)))

    @extend_schema(
        operation_id="agents_archive",
        responses={204: None},
        tags=TAGS,
        description="Archive the agent: hidden and unusable, but kept (unarchive or purge).",
    )
    def delete(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        agent_archive(actor=actor, agent=access_agent(actor=actor, agent_id=agent_id))
        return Response(status=204)


class AgentUnarchiveView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_unarchive", request=None, responses=AgentSerializer, tags=TAGS
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        agent = agent_unarchive(actor=actor, agent=access_agent(actor=actor, agent_id=agent_id))
        return Response(_agent_data(actor, _fresh(actor, agent.pk)))


class AgentPurgeView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_purge",
        request=None,
        responses={204: None},
        tags=TAGS,
        description="Delete an archived agent for good, with its versions.",
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        agent_purge(actor=actor, agent=access_agent(actor=actor, agent_id=agent_id))
        return Response(status=204)


class AgentDuplicateView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_duplicate",
        request=DuplicateSerializer,
        responses={201: AgentSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        source = access_agent(actor=actor, agent_id=agent_id)
        serializer = DuplicateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        copy = agent_duplicate(
            actor=actor, agent=source, name=serializer.validated_data.get("name")
        )
        return Response(_agent_data(actor, _fresh(actor, copy.pk)), status=201)


class AgentExportView(ApiView):
    scope_area = "agents"

    @extend_schema(operation_id="agents_export", responses=AgentImportSerializer, tags=TAGS)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = access_agent(actor=get_actor(request), agent_id=agent_id)
        return Response(agent_export(agent=agent))


class AgentImportView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_import",
        request=AgentImportSerializer,
        responses={201: AgentSerializer},
        tags=TAGS,
        description="Create a private agent from an export document. References resolve by "
        "id in this workspace, else by name (slug for agents).",
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        serializer = AgentImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        agent = agent_import(actor=actor, document=serializer.validated_data)
        return Response(_agent_data(actor, _fresh(actor, agent.pk)), status=201)


class AgentSharingView(ApiView):
    scope_area = "agents"

    @extend_schema(operation_id="agents_sharing_get", responses=SharingSerializer, tags=TAGS)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = access_agent(actor=get_actor(request), agent_id=agent_id)
        return Response(sharing_data(agent=agent, grants=list(agent_grants(agent=agent))))

    @extend_schema(
        operation_id="agents_sharing_set",
        request=SharingSerializer,
        responses=SharingSerializer,
        tags=TAGS,
        description="Replace the agent's visibility and named grants.",
    )
    def put(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        agent = access_agent(actor=actor, agent_id=agent_id)
        serializer = SharingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grants = [
            GrantInput(user_id=g["user_id"], permission=g["permission"])
            for g in serializer.validated_data.get("grants", [])
        ]
        agent_set_sharing(
            actor=actor,
            agent=agent,
            visibility=serializer.validated_data["visibility"],
            grants=grants,
        )
        return Response(sharing_data(agent=agent, grants=list(agent_grants(agent=agent))))


class AgentVersionListView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_versions_list",
        responses=AgentVersionSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = access_agent(actor=get_actor(request), agent_id=agent_id)
        return self.paginate(
            request,
            agent_versions(agent=agent),
            lambda page: AgentVersionSerializer(page, many=True).data,
            ordering=("-number",),
        )


class AgentVersionDetailView(ApiView):
    scope_area = "agents"

    @extend_schema(operation_id="agents_versions_get", responses=AgentVersionSerializer, tags=TAGS)
    def get(self, request: Request, agent_id: uuid.UUID, number: int) -> Response:
        agent = access_agent(actor=get_actor(request), agent_id=agent_id)
        return Response(
            AgentVersionSerializer(access_agent_version(agent=agent, number=number)).data
        )


class AgentVersionDiffView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_versions_diff",
        parameters=[VersionDiffQuerySerializer],
        responses={
            200: FieldChangeSerializer(many=True),
            400: error_doc("`before` or `after` missing or not a version number."),
            404: error_doc("No such agent, or no such version (`agent_version_not_found`)."),
        },
        tags=TAGS,
        description="The configuration fields that differ from version `before` to version "
        "`after`, in configuration order; references by name, text fields also as a line "
        "diff.",
    )
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = access_agent(actor=get_actor(request), agent_id=agent_id)
        query = VersionDiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        changes = agent_version_diff(
            agent=agent, before=query.validated_data["before"], after=query.validated_data["after"]
        )
        return Response(FieldChangeSerializer(changes, many=True).data)


class AgentVersionRestoreView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agents_versions_restore",
        request=None,
        responses=AgentSerializer,
        tags=TAGS,
        description="Make this version's configuration current again, as a new version.",
    )
    def post(self, request: Request, agent_id: uuid.UUID, number: int) -> Response:
        actor = get_actor(request)
        agent = access_agent(actor=actor, agent_id=agent_id)
        agent_version_restore(actor=actor, agent=agent, number=number)
        return Response(_agent_data(actor, _fresh(actor, agent.pk)))


# --- jobs ---------------------------------------------------------------------------


class GenerateAgentJobView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agent_jobs_generate_agent",
        request=GenerateAgentJobSerializer,
        responses={202: AgentJobSerializer},
        tags=JOB_TAGS,
        description="Queue a job that drafts an agent from a description with the "
        "workspace's default chat model. Poll the job; its result is a draft to POST to "
        "/agents.",
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        serializer = GenerateAgentJobSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = agent_job_submit(
            actor=actor, kind=AgentJobKind.GENERATE_AGENT, input=dict(serializer.validated_data)
        )
        return Response(AgentJobSerializer(job).data, status=202)


class OptimizePromptJobView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agent_jobs_optimize_prompt",
        request=OptimizePromptJobSerializer,
        responses={202: AgentJobSerializer},
        tags=JOB_TAGS,
        description="Queue a job that improves a system prompt with the workspace's "
        "default chat model.",
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        serializer = OptimizePromptJobSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = agent_job_submit(
            actor=actor, kind=AgentJobKind.OPTIMIZE_PROMPT, input=dict(serializer.validated_data)
        )
        return Response(AgentJobSerializer(job).data, status=202)


class AgentJobListView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agent_jobs_list", responses=AgentJobSerializer(many=True), tags=JOB_TAGS
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            agent_job_list(actor=get_actor(request)),
            lambda page: AgentJobSerializer(page, many=True).data,
        )


class AgentJobDetailView(ApiView):
    scope_area = "agents"

    @extend_schema(operation_id="agent_jobs_get", responses=AgentJobSerializer, tags=JOB_TAGS)
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        job = access_agent_job(actor=get_actor(request), job_id=job_id)
        return Response(AgentJobSerializer(job).data)


class AgentJobCancelView(ApiView):
    scope_area = "agents"

    @extend_schema(
        operation_id="agent_jobs_cancel", request=None, responses=AgentJobSerializer, tags=JOB_TAGS
    )
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        job = agent_job_cancel(actor=actor, job=access_agent_job(actor=actor, job_id=job_id))
        return Response(AgentJobSerializer(job).data)


def _policy_json(policy: Any) -> dict[str, Any]:
    names: list[str] = list(CodeInterpreterPolicySerializer().fields.keys())
    return {name: getattr(policy, name) for name in names}


class CodeInterpreterPolicyView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="code_interpreter_policy_get",
        responses=CodeInterpreterPolicySerializer,
        tags=["workspaces"],
    )
    def get(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        return Response(_policy_json(code_interpreter_policy(workspace_id=membership.workspace_id)))

    @extend_schema(
        operation_id="code_interpreter_policy_update",
        request=CodeInterpreterPolicySerializer,
        responses=CodeInterpreterPolicySerializer,
        tags=["workspaces"],
        description="Turn the sandboxed code interpreter on or off for the workspace and "
        "set its limits (admin). Every change is in the audit trail.",
    )
    def patch(self, request: Request, workspace_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        access_workspace(actor=actor, workspace_id=workspace_id)
        if actor.workspace_id != workspace_id:
            raise WorkspaceNotFound()
        serializer = CodeInterpreterPolicySerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        policy = code_interpreter_policy_update(
            actor=actor,
            fields=dict(serializer.validated_data),
            ip=client_address(request._request) or None,
        )
        return Response(_policy_json(policy))
