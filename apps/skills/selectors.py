"""Reads of the tools registry, MCP servers, OpenAPI imports and skills, and what the run
engine asks for: `tool_specs_for` and `skills_prompt`."""

import json
import uuid
from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q, QuerySet

from apps.core.crypto import mask_secret
from apps.core.tools import (
    ToolContext,
    ToolExecutor,
    ToolResult,
    ToolSpec,
    tool_executor_for,
)
from apps.skills.a2a_client import RemoteConfig, remote_executor
from apps.skills.choices import BuiltinTool, McpAuth, RemoteAgentAuth, ToolSource
from apps.skills.exceptions import (
    McpServerNotFound,
    OpenApiSourceNotFound,
    RemoteAgentNotFound,
    SkillNotFound,
    SkillVersionNotFound,
    ToolNotFound,
)
from apps.skills.executors import (
    mcp_executor,
    openapi_executor,
    run_http_request,
    run_web_fetch,
    validating,
)
from apps.skills.mcp_client import McpConfig
from apps.skills.models import (
    McpServer,
    OpenApiSource,
    RemoteAgent,
    Skill,
    SkillFile,
    SkillVersion,
    Tool,
)
from apps.users.actors import Actor

# --- access ---------------------------------------------------------------------------


def tool_list(
    *,
    actor: Actor,
    source: str | None = None,
    enabled: bool | None = None,
    mcp_server_id: uuid.UUID | None = None,
    openapi_source_id: uuid.UUID | None = None,
) -> QuerySet[Tool]:
    """Tools of the actor's workspace, optionally filtered."""
    qs = Tool.objects.filter(workspace=actor.workspace)
    if source:
        qs = qs.filter(source=source)
    if enabled is not None:
        qs = qs.filter(enabled=enabled)
    if mcp_server_id:
        qs = qs.filter(mcp_server_id=mcp_server_id)
    if openapi_source_id:
        qs = qs.filter(openapi_source_id=openapi_source_id)
    return qs


def access_tool(*, actor: Actor, tool_id: uuid.UUID) -> Tool:
    """A tool of the actor's workspace. Raises ToolNotFound."""
    tool = Tool.objects.filter(workspace=actor.workspace, id=tool_id).first()
    if tool is None:
        raise ToolNotFound()
    return tool


def mcp_server_list(*, actor: Actor) -> QuerySet[McpServer]:
    return McpServer.objects.filter(workspace=actor.workspace).select_related("stdio_command")


def access_mcp_server(*, actor: Actor, mcp_server_id: uuid.UUID) -> McpServer:
    """An MCP server of the actor's workspace. Raises McpServerNotFound."""
    server = mcp_server_list(actor=actor).filter(id=mcp_server_id).first()
    if server is None:
        raise McpServerNotFound()
    return server


def remote_agent_list(*, actor: Actor) -> QuerySet[RemoteAgent]:
    return RemoteAgent.objects.filter(workspace=actor.workspace).select_related("tool")


def access_remote_agent(*, actor: Actor, remote_agent_id: uuid.UUID) -> RemoteAgent:
    """A remote A2A agent of the actor's workspace. Raises RemoteAgentNotFound."""
    remote = remote_agent_list(actor=actor).filter(id=remote_agent_id).first()
    if remote is None:
        raise RemoteAgentNotFound()
    return remote


def remote_config_for(remote: RemoteAgent) -> RemoteConfig:
    """How to reach a remote agent: its URL, its credential as a header, its card."""
    headers: dict[str, str] = {}
    if remote.auth_type == RemoteAgentAuth.BEARER and remote.credential:
        headers["Authorization"] = f"Bearer {remote.credential}"
    elif remote.auth_type == RemoteAgentAuth.HEADER and remote.credential:
        headers[remote.auth_header] = remote.credential
    return RemoteConfig(
        url=remote.url,
        headers=headers,
        timeout=float(remote.timeout_seconds),
        card=dict(remote.card or {}),
    )


def openapi_source_list(*, actor: Actor) -> QuerySet[OpenApiSource]:
    return OpenApiSource.objects.filter(workspace=actor.workspace)


def access_openapi_source(*, actor: Actor, openapi_source_id: uuid.UUID) -> OpenApiSource:
    """An OpenAPI import of the actor's workspace. Raises OpenApiSourceNotFound."""
    source = openapi_source_list(actor=actor).filter(id=openapi_source_id).first()
    if source is None:
        raise OpenApiSourceNotFound()
    return source


def skill_list(*, actor: Actor) -> QuerySet[Skill]:
    """The workspace's skills and the operator's system skills."""
    return Skill.objects.filter(Q(workspace=actor.workspace) | Q(workspace__isnull=True))


def access_skill(*, actor: Actor, skill_id: uuid.UUID) -> Skill:
    """A skill of the actor's workspace or a system skill. Raises SkillNotFound."""
    skill = skill_list(actor=actor).filter(id=skill_id).first()
    if skill is None:
        raise SkillNotFound()
    return skill


def skill_version_list(*, skill: Skill) -> QuerySet[SkillVersion]:
    return SkillVersion.objects.filter(skill=skill).order_by("-number")


def access_skill_version(*, skill: Skill, number: int) -> SkillVersion:
    """Version `number` of `skill`. Raises SkillVersionNotFound."""
    version = skill_version_list(skill=skill).filter(number=number).first()
    if version is None:
        raise SkillVersionNotFound()
    return version


def skill_version_files(*, version: SkillVersion) -> QuerySet[SkillFile]:
    return SkillFile.objects.filter(version=version).defer("content")


def skill_versions_behind(
    *, workspace_id: uuid.UUID, version_ids: Iterable[uuid.UUID]
) -> list[tuple[SkillVersion, SkillVersion]]:
    """(pinned, latest) for each pinned version that is older than its skill's latest
    version: what an agent using it may be offered to update to."""
    ids = [i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in version_ids]
    pinned = list(
        SkillVersion.objects.select_related("skill")
        .filter(id__in=ids)
        .filter(Q(skill__workspace_id=workspace_id) | Q(skill__workspace__isnull=True))
    )
    behind = [v for v in pinned if v.number < v.skill.latest_version]
    if not behind:
        return []
    latest = {
        v.skill_id: v
        for v in SkillVersion.objects.filter(
            Q(
                *[Q(skill_id=v.skill_id, number=v.skill.latest_version) for v in behind],
                _connector=Q.OR,
            )
        )
    }
    return [(v, latest[v.skill_id]) for v in behind if v.skill_id in latest]


def latest_skill_version(*, skill: Skill) -> SkillVersion:
    version = skill.versions.filter(number=skill.latest_version).first()
    if version is None:
        raise SkillVersionNotFound()
    return version


# --- for the run engine ---------------------------------------------------------------


async def _unauthorized(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    return ToolResult(
        content="The MCP server needs OAuth authorization: a workspace member must "
        "authorize it first.",
        is_error=True,
    )


async def _no_executor(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    return ToolResult(
        content="This tool cannot run here (its app is not installed).", is_error=True
    )


def mcp_config_for(server: McpServer, *, redirect_uri: str = "") -> McpConfig:
    """The in-memory connection settings of a server (secrets decrypted)."""
    headers: dict[str, str] = json.loads(server.headers) if server.headers else {}
    if server.auth_type == McpAuth.BEARER and server.bearer_token:
        headers["Authorization"] = f"Bearer {server.bearer_token}"
    command = server.stdio_command
    env: dict[str, str] = {}
    if command is not None and command.env:
        env = {str(k): str(v) for k, v in json.loads(command.env).items()}
    config = McpConfig(
        server_id=server.id,
        transport=server.transport,
        url=server.url,
        headers=tuple(sorted(headers.items())),
        command=command.command if command else "",
        args=tuple(str(a) for a in (command.args if command else [])),
        env=tuple(sorted(env.items())),
        cwd=command.cwd if command else "",
        timeout=float(server.timeout_seconds),
        oauth=server.auth_type == McpAuth.OAUTH,
        oauth_redirect_uri=redirect_uri,
    )
    return config


def tool_spec_for_row(tool: Tool, *, pooled: bool = True) -> ToolSpec:
    """The ToolSpec that runs one registry row (see `tool_specs_for`). `pooled=False`:
    MCP calls use a connection of their own (direct executions from the API)."""
    run: ToolExecutor
    if tool.source == ToolSource.BUILTIN:
        run = run_http_request if tool.builtin == BuiltinTool.HTTP_REQUEST else run_web_fetch
    elif tool.source == ToolSource.OPENAPI:
        source = tool.openapi_source
        assert source is not None
        run = openapi_executor(
            base_url=source.base_url,
            operation=tool.operation,
            auth={
                "type": source.auth_type,
                "name": source.auth_name,
                "credential": source.credential,
            },
        )
    elif tool.source == ToolSource.A2A:
        remote = tool.remote_agent
        assert remote is not None
        run = remote_executor(
            remote_agent_id=remote.id, name=remote.name, config=remote_config_for(remote)
        )
    elif tool.source == ToolSource.WORKFLOW:
        # Provided by apps.workflows (registered in its AppConfig.ready).
        run = tool_executor_for(tool.source, tool.operation) or _no_executor
    else:
        server = tool.mcp_server
        assert server is not None
        if server.auth_type == McpAuth.OAUTH and not server.oauth_tokens:
            run = _unauthorized
        else:
            run = mcp_executor(
                config=mcp_config_for(server), remote_name=tool.remote_name, pooled=pooled
            )
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        parameters=tool.parameters,
        source=tool.source,
        execute=validating(tool.parameters, run),
        requires_approval=tool.requires_approval,
        ref=str(tool.id),
    )


def _resolve_skill_versions(
    *, workspace_id: uuid.UUID, skill_ids: Iterable[uuid.UUID]
) -> list[SkillVersion]:
    """Each id is a SkillVersion id (a pinned version) or a Skill id (its latest version);
    ids the workspace cannot see are skipped."""
    ids = [i if isinstance(i, uuid.UUID) else uuid.UUID(str(i)) for i in skill_ids]
    visible = Q(skill__workspace_id=workspace_id) | Q(skill__workspace__isnull=True)
    pinned = {
        v.id: v for v in SkillVersion.objects.select_related("skill").filter(visible, id__in=ids)
    }
    rest = [i for i in ids if i not in pinned]
    latest: dict[uuid.UUID, SkillVersion] = {}
    if rest:
        skills = Skill.objects.filter(
            Q(workspace_id=workspace_id) | Q(workspace__isnull=True), id__in=rest
        )
        for skill in skills:
            version = skill.versions.filter(number=skill.latest_version).first()
            if version is not None:
                latest[skill.id] = version
    out: list[SkillVersion] = []
    seen: set[uuid.UUID] = set()
    for i in ids:
        version = pinned.get(i) or latest.get(i)
        if version is not None and version.skill_id not in seen:
            seen.add(version.skill_id)
            out.append(version)
    return out


def skills_prompt(*, workspace_id: uuid.UUID, skill_ids: list[uuid.UUID]) -> str:
    """The system-prompt section listing the skills (name + description only: progressive
    disclosure; the model loads one with `load_skill`). Empty without skills."""
    versions = _resolve_skill_versions(workspace_id=workspace_id, skill_ids=skill_ids)
    if not versions:
        return ""
    lines = [
        "You have these skills. When one is relevant, call `load_skill` with its name to "
        "read its instructions, and `read_skill_file` for a file it mentions. Skill scripts "
        "are not executed for you.",
        "",
    ]
    lines += [f"- {v.name}: {v.description}" for v in versions]
    return "\n".join(lines)


def _skill_tools(versions: list[SkillVersion]) -> list[ToolSpec]:
    by_name = {v.name: v for v in versions}
    names = sorted(by_name)

    async def load_skill(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        version = by_name.get(args["name"])
        if version is None:
            return ToolResult(content=f"No skill named {args['name']!r}.", is_error=True)

        paths = await sync_to_async(lambda: list(version.files.values_list("path", flat=True)))()
        text = version.skill_md
        if paths:
            text += "\n\n---\nFiles of this skill (read with read_skill_file):\n" + "\n".join(
                f"- {p}" for p in paths
            )
        return ToolResult(content=text, data={"skill": version.name, "version": version.number})

    async def read_skill_file(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        version = by_name.get(args["skill"])
        if version is None:
            return ToolResult(content=f"No skill named {args['skill']!r}.", is_error=True)

        path = str(args["path"]).lstrip("/")
        row = await sync_to_async(lambda: version.files.filter(path=path).first())()
        if row is None:
            return ToolResult(
                content=f"The skill {version.name!r} has no file {path!r}.", is_error=True
            )
        raw = bytes(row.content)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return ToolResult(
                content=f"{path} is a binary file ({len(raw)} bytes); it cannot be shown.",
                is_error=True,
            )
        limit = 50_000
        if len(text) > limit:
            text = text[:limit] + "\n[truncated]"
        return ToolResult(
            content=text, data={"skill": version.name, "version": version.number, "path": path}
        )

    load_schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "enum": names}},
        "required": ["name"],
        "additionalProperties": False,
    }
    read_schema = {
        "type": "object",
        "properties": {
            "skill": {"type": "string", "enum": names},
            "path": {"type": "string", "description": "Path of the file inside the skill."},
        },
        "required": ["skill", "path"],
        "additionalProperties": False,
    }
    return [
        ToolSpec(
            name="load_skill",
            description="Load the full instructions (SKILL.md) of one of your skills.",
            parameters=load_schema,
            source="skill",
            execute=validating(load_schema, load_skill),
            ref="skills:load_skill",
        ),
        ToolSpec(
            name="read_skill_file",
            description="Read one file (reference, script source, asset) of one of your skills.",
            parameters=read_schema,
            source="skill",
            execute=validating(read_schema, read_skill_file),
            ref="skills:read_skill_file",
        ),
    ]


def tool_specs_for(
    *,
    workspace_id: uuid.UUID,
    tool_ids: list[uuid.UUID],
    skill_ids: list[uuid.UUID] | None = None,
) -> list[ToolSpec]:
    """ToolSpecs for the enabled, available registry tools among `tool_ids` in the
    workspace (others are skipped), plus `load_skill` and `read_skill_file` when skills are
    given (`skill_ids`: SkillVersion ids for pinned versions, or Skill ids for the latest).
    Executing a spec never raises: a dead MCP server is an error result."""
    tools = (
        Tool.objects.filter(
            workspace_id=workspace_id, id__in=list(tool_ids), enabled=True, available=True
        )
        .select_related("mcp_server__stdio_command", "openapi_source", "remote_agent")
        .order_by("name")
    )
    specs = [tool_spec_for_row(t) for t in tools]
    if skill_ids:
        versions = _resolve_skill_versions(workspace_id=workspace_id, skill_ids=skill_ids)
        if versions:
            specs += _skill_tools(versions)
    return specs


def mcp_server_masked_headers(server: McpServer) -> dict[str, str]:
    """Header names of a server with their values masked."""
    headers: dict[str, str] = json.loads(server.headers) if server.headers else {}
    return {k: mask_secret(v) for k, v in headers.items()}


def mcp_server_has_oauth_tokens(server: McpServer) -> bool:
    return server.auth_type == McpAuth.OAUTH and bool(server.oauth_tokens)
