import json
import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.exceptions import PayloadTooLarge
from apps.skills.api import serializers as s
from apps.skills.models import StdioCommand
from apps.skills.selectors import (
    access_mcp_server,
    access_openapi_source,
    access_remote_agent,
    access_skill,
    access_skill_version,
    access_tool,
    latest_skill_version,
    mcp_server_list,
    openapi_source_list,
    remote_agent_list,
    skill_list,
    skill_version_list,
    tool_list,
)
from apps.skills.services import (
    builtin_tools_ensure,
    mcp_oauth_complete,
    mcp_oauth_start,
    mcp_server_create,
    mcp_server_delete,
    mcp_server_refresh,
    mcp_server_update,
    openapi_import,
    openapi_source_delete,
    remote_agent_create,
    remote_agent_delete,
    remote_agent_refresh,
    remote_agent_update,
    skill_create,
    skill_delete,
    skill_import_url,
    skill_update,
    skill_upload,
    tool_exec,
    tool_update,
)
from apps.users.actors import get_actor
from apps.users.choices import Role

TOOLS = ["tools"]
MCP = ["mcp"]
SKILLS = ["skills"]


def _client_ip(request: Request) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _read_upload(upload: Any) -> bytes:
    if upload.size > settings.API_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge("The file is too large.", field="file")
    return bytes(upload.read())


# --- tools ----------------------------------------------------------------------------


class ToolListView(ApiView):
    scope_area = "tools"

    @extend_schema(
        operation_id="tools_list",
        parameters=[s.ToolListQuerySerializer],
        responses=s.ToolSerializer(many=True),
        tags=TOOLS,
    )
    def get(self, request: Request) -> Response:
        actor = get_actor(request)
        query = s.ToolListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        builtin_tools_ensure(workspace=actor.workspace)
        qs = tool_list(
            actor=actor,
            source=query.validated_data.get("source"),
            enabled=query.validated_data.get("enabled"),
            mcp_server_id=query.validated_data.get("mcp_server"),
            openapi_source_id=query.validated_data.get("openapi_source"),
        )
        return self.paginate(request, qs, lambda page: s.ToolSerializer(page, many=True).data)


class ToolDetailView(ApiView):
    scope_area = "tools"

    @extend_schema(operation_id="tools_get", responses=s.ToolSerializer, tags=TOOLS)
    def get(self, request: Request, tool_id: uuid.UUID) -> Response:
        tool = access_tool(actor=get_actor(request), tool_id=tool_id)
        return Response(s.ToolSerializer(tool).data)

    @extend_schema(
        operation_id="tools_update",
        request=s.ToolUpdateSerializer,
        responses=s.ToolSerializer,
        tags=TOOLS,
    )
    def patch(self, request: Request, tool_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        tool = access_tool(actor=actor, tool_id=tool_id)
        body = s.ToolUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tool = tool_update(actor=actor, tool=tool, **body.validated_data)
        return Response(s.ToolSerializer(tool).data)


class ToolExecView(ApiView):
    scope_area = "tools"

    @extend_schema(
        operation_id="tools_exec",
        request=s.ToolExecSerializer,
        responses=s.ToolResultSerializer,
        tags=TOOLS,
    )
    def post(self, request: Request, tool_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        tool = access_tool(actor=actor, tool_id=tool_id)
        body = s.ToolExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = tool_exec(
            actor=actor,
            tool=tool,
            arguments=body.validated_data["arguments"],
            ip=_client_ip(request),
        )
        return Response(
            {"content": result.content, "is_error": result.is_error, "data": result.data}
        )


class OpenApiSourceListView(ApiView):
    scope_area = "tools"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="openapi_sources_list",
        responses=s.OpenApiSourceSerializer(many=True),
        tags=TOOLS,
    )
    def get(self, request: Request) -> Response:
        qs = openapi_source_list(actor=get_actor(request))
        return self.paginate(
            request, qs, lambda page: s.OpenApiSourceSerializer(page, many=True).data
        )

    @extend_schema(
        operation_id="openapi_sources_import",
        request={
            "application/json": s.OpenApiImportSerializer,
            "multipart/form-data": s.OpenApiImportSerializer,
        },
        responses={201: s.OpenApiSourceSerializer},
        tags=TOOLS,
    )
    def post(self, request: Request) -> Response:
        body = s.OpenApiImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        document: str | bytes | None = None
        upload = data.pop("file", None)
        inline = data.pop("document", None)
        if upload is not None:
            document = _read_upload(upload)
        elif inline is not None:
            document = json.dumps(inline) if not isinstance(inline, str) else inline
        source = openapi_import(actor=get_actor(request), document=document, **data)
        return Response(s.OpenApiSourceSerializer(source).data, status=201)


class OpenApiSourceDetailView(ApiView):
    scope_area = "tools"

    @extend_schema(
        operation_id="openapi_sources_get", responses=s.OpenApiSourceSerializer, tags=TOOLS
    )
    def get(self, request: Request, openapi_source_id: uuid.UUID) -> Response:
        source = access_openapi_source(
            actor=get_actor(request), openapi_source_id=openapi_source_id
        )
        return Response(s.OpenApiSourceSerializer(source).data)

    @extend_schema(operation_id="openapi_sources_delete", responses={204: None}, tags=TOOLS)
    def delete(self, request: Request, openapi_source_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        source = access_openapi_source(actor=actor, openapi_source_id=openapi_source_id)
        openapi_source_delete(actor=actor, source=source)
        return Response(status=204)


# --- MCP ------------------------------------------------------------------------------


class StdioCommandListView(ApiView):
    scope_area = "mcp"

    @extend_schema(
        operation_id="mcp_commands_list",
        responses=s.StdioCommandSerializer(many=True),
        tags=MCP,
    )
    def get(self, request: Request) -> Response:
        get_actor(request)
        qs = StdioCommand.objects.filter(enabled=True)
        return self.paginate(
            request, qs, lambda page: s.StdioCommandSerializer(page, many=True).data
        )


class McpServerListView(ApiView):
    scope_area = "mcp"

    @extend_schema(
        operation_id="mcp_servers_list", responses=s.McpServerSerializer(many=True), tags=MCP
    )
    def get(self, request: Request) -> Response:
        qs = mcp_server_list(actor=get_actor(request))
        return self.paginate(request, qs, lambda page: s.McpServerSerializer(page, many=True).data)

    @extend_schema(
        operation_id="mcp_servers_create",
        request=s.McpServerCreateSerializer,
        responses={201: s.McpServerSerializer},
        tags=MCP,
    )
    def post(self, request: Request) -> Response:
        body = s.McpServerCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        server = mcp_server_create(actor=get_actor(request), **body.validated_data)
        return Response(s.McpServerSerializer(server).data, status=201)


class McpServerDetailView(ApiView):
    scope_area = "mcp"

    @extend_schema(operation_id="mcp_servers_get", responses=s.McpServerSerializer, tags=MCP)
    def get(self, request: Request, mcp_server_id: uuid.UUID) -> Response:
        server = access_mcp_server(actor=get_actor(request), mcp_server_id=mcp_server_id)
        return Response(s.McpServerSerializer(server).data)

    @extend_schema(
        operation_id="mcp_servers_update",
        request=s.McpServerUpdateSerializer,
        responses=s.McpServerSerializer,
        tags=MCP,
    )
    def patch(self, request: Request, mcp_server_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
        body = s.McpServerUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        server = mcp_server_update(actor=actor, server=server, **body.validated_data)
        return Response(s.McpServerSerializer(server).data)

    @extend_schema(operation_id="mcp_servers_delete", responses={204: None}, tags=MCP)
    def delete(self, request: Request, mcp_server_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
        mcp_server_delete(actor=actor, server=server)
        return Response(status=204)


class McpServerRefreshView(ApiView):
    scope_area = "mcp"

    @extend_schema(
        operation_id="mcp_servers_refresh",
        request=None,
        responses=s.McpServerSerializer,
        tags=MCP,
    )
    def post(self, request: Request, mcp_server_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
        actor.require_role(Role.MEMBER)
        server = mcp_server_refresh(server=server)
        return Response(s.McpServerSerializer(server).data)


class McpOAuthStartView(ApiView):
    scope_area = "mcp"

    @extend_schema(
        operation_id="mcp_servers_oauth_start",
        request=s.OAuthStartSerializer,
        responses=s.OAuthStartResultSerializer,
        tags=MCP,
    )
    def post(self, request: Request, mcp_server_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        server = access_mcp_server(actor=actor, mcp_server_id=mcp_server_id)
        body = s.OAuthStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        redirect_uri = body.validated_data.get("redirect_uri") or request.build_absolute_uri(
            "/api/v1/mcp/oauth/callback"
        )
        url = mcp_oauth_start(actor=actor, server=server, redirect_uri=redirect_uri)
        return Response({"authorization_url": url})


class McpOAuthCallbackView(ApiView):
    scope_area = "mcp"

    @extend_schema(
        operation_id="mcp_oauth_callback",
        parameters=[
            OpenApiParameter("state", str, required=True),
            OpenApiParameter("code", str, required=True),
        ],
        responses=s.McpServerSerializer,
        tags=MCP,
    )
    def get(self, request: Request) -> Response:
        query = s.OAuthCallbackSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        server = mcp_oauth_complete(
            actor=get_actor(request),
            state=query.validated_data["state"],
            code=query.validated_data["code"],
        )
        return Response(s.McpServerSerializer(server).data)


# --- skills ---------------------------------------------------------------------------


class SkillListView(ApiView):
    scope_area = "skills"

    @extend_schema(operation_id="skills_list", responses=s.SkillSerializer(many=True), tags=SKILLS)
    def get(self, request: Request) -> Response:
        qs = skill_list(actor=get_actor(request))
        return self.paginate(request, qs, lambda page: s.SkillSerializer(page, many=True).data)

    @extend_schema(
        operation_id="skills_create",
        request=s.SkillWriteSerializer,
        responses={201: s.SkillVersionSerializer},
        tags=SKILLS,
    )
    def post(self, request: Request) -> Response:
        body = s.SkillWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = skill_create(actor=get_actor(request), skill_md=body.validated_data["skill_md"])
        return Response(s.SkillVersionSerializer(version).data, status=201)


class SkillUploadView(ApiView):
    scope_area = "skills"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="skills_upload",
        request={"multipart/form-data": s.SkillUploadSerializer},
        responses={201: s.SkillVersionSerializer},
        tags=SKILLS,
    )
    def post(self, request: Request) -> Response:
        body = s.SkillUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = skill_upload(
            actor=get_actor(request), data=_read_upload(body.validated_data["file"])
        )
        return Response(s.SkillVersionSerializer(version).data, status=201)


class SkillImportView(ApiView):
    scope_area = "skills"

    @extend_schema(
        operation_id="skills_import",
        request=s.SkillImportSerializer,
        responses={201: s.SkillVersionSerializer},
        tags=SKILLS,
    )
    def post(self, request: Request) -> Response:
        body = s.SkillImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = skill_import_url(actor=get_actor(request), url=body.validated_data["url"])
        return Response(s.SkillVersionSerializer(version).data, status=201)


SkillDetailSerializer = inline_serializer(
    name="SkillDetail",
    fields={
        "skill": s.SkillSerializer(),
        "version": s.SkillVersionSerializer(),
    },
)


class SkillDetailView(ApiView):
    scope_area = "skills"

    @extend_schema(operation_id="skills_get", responses=SkillDetailSerializer, tags=SKILLS)
    def get(self, request: Request, skill_id: uuid.UUID) -> Response:
        skill = access_skill(actor=get_actor(request), skill_id=skill_id)
        version = latest_skill_version(skill=skill)
        return Response(
            {
                "skill": s.SkillSerializer(skill).data,
                "version": s.SkillVersionSerializer(version).data,
            }
        )

    @extend_schema(
        operation_id="skills_update",
        request=s.SkillWriteSerializer,
        responses=s.SkillVersionSerializer,
        tags=SKILLS,
    )
    def patch(self, request: Request, skill_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        skill = access_skill(actor=actor, skill_id=skill_id)
        body = s.SkillWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = skill_update(actor=actor, skill=skill, skill_md=body.validated_data["skill_md"])
        return Response(s.SkillVersionSerializer(version).data)

    @extend_schema(operation_id="skills_delete", responses={204: None}, tags=SKILLS)
    def delete(self, request: Request, skill_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        skill = access_skill(actor=actor, skill_id=skill_id)
        skill_delete(actor=actor, skill=skill)
        return Response(status=204)


class SkillVersionListView(ApiView):
    scope_area = "skills"

    @extend_schema(
        operation_id="skill_versions_list",
        responses=s.SkillVersionBriefSerializer(many=True),
        tags=SKILLS,
    )
    def get(self, request: Request, skill_id: uuid.UUID) -> Response:
        skill = access_skill(actor=get_actor(request), skill_id=skill_id)
        return self.paginate(
            request,
            skill_version_list(skill=skill),
            lambda page: s.SkillVersionBriefSerializer(page, many=True).data,
            ordering="-created_at",
        )


class SkillVersionDetailView(ApiView):
    scope_area = "skills"

    @extend_schema(
        operation_id="skill_versions_get", responses=s.SkillVersionSerializer, tags=SKILLS
    )
    def get(self, request: Request, skill_id: uuid.UUID, number: int) -> Response:
        skill = access_skill(actor=get_actor(request), skill_id=skill_id)
        version = access_skill_version(skill=skill, number=number)
        return Response(s.SkillVersionSerializer(version).data)


_unused = serializers  # keep the import for inline serializers' field types


# --- remote A2A agents ----------------------------------------------------------------------

REMOTE = ["remote-agents"]


class RemoteAgentListView(ApiView):
    """Remote A2A agents of the workspace; registering one creates its tool `ask_<name>`
    and fetches its card (through the outbound guard)."""

    scope_area = "tools"

    @extend_schema(
        operation_id="remote_agents_list", responses=s.RemoteAgentSerializer(many=True), tags=REMOTE
    )
    def get(self, request: Request) -> Response:
        qs = remote_agent_list(actor=get_actor(request))
        return self.paginate(
            request, qs, lambda page: s.RemoteAgentSerializer(page, many=True).data
        )

    @extend_schema(
        operation_id="remote_agents_create",
        request=s.RemoteAgentCreateSerializer,
        responses={201: s.RemoteAgentSerializer},
        tags=REMOTE,
    )
    def post(self, request: Request) -> Response:
        body = s.RemoteAgentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        remote = remote_agent_create(actor=get_actor(request), **body.validated_data)
        return Response(s.RemoteAgentSerializer(remote).data, status=201)


class RemoteAgentDetailView(ApiView):
    scope_area = "tools"

    @extend_schema(operation_id="remote_agents_get", responses=s.RemoteAgentSerializer, tags=REMOTE)
    def get(self, request: Request, remote_agent_id: uuid.UUID) -> Response:
        remote = access_remote_agent(actor=get_actor(request), remote_agent_id=remote_agent_id)
        return Response(s.RemoteAgentSerializer(remote).data)

    @extend_schema(
        operation_id="remote_agents_update",
        request=s.RemoteAgentUpdateSerializer,
        responses=s.RemoteAgentSerializer,
        tags=REMOTE,
    )
    def patch(self, request: Request, remote_agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        remote = access_remote_agent(actor=actor, remote_agent_id=remote_agent_id)
        body = s.RemoteAgentUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        remote = remote_agent_update(actor=actor, remote=remote, **body.validated_data)
        return Response(s.RemoteAgentSerializer(remote).data)

    @extend_schema(operation_id="remote_agents_delete", responses={204: None}, tags=REMOTE)
    def delete(self, request: Request, remote_agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        remote = access_remote_agent(actor=actor, remote_agent_id=remote_agent_id)
        remote_agent_delete(actor=actor, remote=remote)
        return Response(status=204)


class RemoteAgentRefreshView(ApiView):
    scope_area = "tools"

    @extend_schema(
        operation_id="remote_agents_refresh",
        request=None,
        responses=s.RemoteAgentSerializer,
        tags=REMOTE,
        description="Fetch the remote agent's card again.",
    )
    def post(self, request: Request, remote_agent_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        remote = access_remote_agent(actor=actor, remote_agent_id=remote_agent_id)
        actor.require_role(Role.MEMBER)
        return Response(s.RemoteAgentSerializer(remote_agent_refresh(remote=remote)).data)
