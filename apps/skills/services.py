"""Writes of the tools registry, MCP servers, OpenAPI imports and skills."""

import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import urljoin

import yaml
from asgiref.sync import async_to_sync
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.core.exceptions import ValidationFailed
from apps.core.outbound import OutboundError, check_url, fetch
from apps.core.tools import ToolContext, ToolResult
from apps.skills import a2a_client, mcp_client
from apps.skills.bundles import (
    ParsedSkill,
    limit,
    parse_skill_md,
    parse_skill_text,
    parse_skill_zip,
)
from apps.skills.choices import (
    BuiltinTool,
    McpAuth,
    McpStatus,
    McpTransport,
    OpenApiAuth,
    RemoteAgentAuth,
    RemoteAgentStatus,
    SkillSource,
    ToolSource,
)
from apps.skills.exceptions import (
    InvalidOpenApi,
    InvalidSkill,
    InvalidToolArguments,
    NameTaken,
    OAuthFailed,
    StdioCommandNotFound,
)
from apps.skills.executors import HTTP_REQUEST_SCHEMA, WEB_FETCH_SCHEMA, argument_errors
from apps.skills.models import (
    McpServer,
    OpenApiSource,
    RemoteAgent,
    Skill,
    SkillFile,
    SkillVersion,
    StdioCommand,
    Tool,
)
from apps.skills.selectors import mcp_config_for, remote_config_for, tool_spec_for_row
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import User, Workspace
from apps.users.services import audit_record

logger = logging.getLogger(__name__)

TOOL_NAME_RE = re.compile(r"[^a-zA-Z0-9_-]+")
IMPORT_MAX_BYTES = 10 * 1024 * 1024

BUILTINS: dict[str, tuple[str, dict[str, Any]]] = {
    BuiltinTool.HTTP_REQUEST: (
        "Make an HTTP request to a public URL and return the status and body "
        "(bounded in size and time).",
        HTTP_REQUEST_SCHEMA,
    ),
    BuiltinTool.WEB_FETCH: (
        "Fetch a web page and return its readable text (HTML converted to text).",
        WEB_FETCH_SCHEMA,
    ),
}


def tool_name(raw: str, *, taken: set[str]) -> str:
    """A model-API-safe tool name (^[a-zA-Z0-9_-]{1,64}$) not in `taken`."""
    base = TOOL_NAME_RE.sub("_", raw).strip("_")[:64] or "tool"
    name, n = base, 2
    while name in taken:
        suffix = f"_{n}"
        name = base[: 64 - len(suffix)] + suffix
        n += 1
    return name


# --- tools ----------------------------------------------------------------------------


def builtin_tools_ensure(*, workspace: Workspace) -> None:
    """Create the built-in tools' registry rows of `workspace` if missing (idempotent)."""
    existing = set(
        Tool.objects.filter(workspace=workspace, source=ToolSource.BUILTIN).values_list(
            "builtin", flat=True
        )
    )
    for key, (description, schema) in BUILTINS.items():
        if key in existing:
            continue
        try:
            with transaction.atomic():
                Tool.objects.create(
                    workspace=workspace,
                    name=key,
                    description=description,
                    parameters=schema,
                    source=ToolSource.BUILTIN,
                    builtin=key,
                )
        except IntegrityError:
            continue  # created concurrently, or a user tool already took the name


def tool_update(
    *, actor: Actor, tool: Tool, enabled: bool | None = None, requires_approval: bool | None = None
) -> Tool:
    """Enable/disable a tool or change whether it needs approval. Needs member role."""
    actor.require_role(Role.MEMBER)
    fields = []
    if enabled is not None:
        tool.enabled = enabled
        fields.append("enabled")
    if requires_approval is not None:
        tool.requires_approval = requires_approval
        fields.append("requires_approval")
    if fields:
        tool.save(update_fields=[*fields, "updated_at"])
    return tool


def tool_exec(
    *, actor: Actor, tool: Tool, arguments: dict[str, Any], ip: str | None = None
) -> ToolResult:
    """Run one tool directly (testing it). Raises InvalidToolArguments (400) when the
    arguments break the schema; the tool's own failure is a result with is_error. Audited."""
    actor.require_role(Role.MEMBER)
    errors = argument_errors(tool.parameters, arguments)
    if errors:
        raise InvalidToolArguments(
            details=[{"field": f"arguments.{e['field']}", "message": e["message"]} for e in errors]
        )
    spec = tool_spec_for_row(tool, pooled=False)
    ctx = ToolContext(workspace_id=actor.workspace_id, user_id=actor.user.id)
    result: ToolResult = async_to_sync(spec.execute)(arguments, ctx)
    audit_record(
        action="tool.exec",
        actor_user=actor.user,
        workspace_id=actor.workspace_id,
        target_type="tool",
        target_id=str(tool.id),
        metadata={"tool": tool.name, "source": tool.source, "is_error": result.is_error},
        ip=ip,
    )
    return result


# --- MCP servers ----------------------------------------------------------------------


def _normalise_headers(headers: dict[str, str] | None) -> str:
    if not headers:
        return ""
    for key, value in headers.items():
        if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", key) or "\n" in str(value):
            raise ValidationFailed(f"Invalid header {key!r}.", field="headers")
    return json.dumps({str(k): str(v) for k, v in headers.items()})


def mcp_server_create(
    *,
    actor: Actor,
    name: str,
    transport: str,
    url: str = "",
    stdio_command: str = "",
    headers: dict[str, str] | None = None,
    bearer_token: str = "",
    auth_type: str = McpAuth.NONE,
    timeout_seconds: int = 60,
    connect: bool = True,
) -> McpServer:
    """Register an MCP server, then connect and discover its tools (the status says how
    that went; a failure to connect does not undo the registration).

    Raises OutboundBlocked (400 url_not_allowed) for a URL the guard refuses,
    StdioCommandNotFound for a stdio command not in the operator registry, NameTaken."""
    actor.require_role(Role.MEMBER)
    command: StdioCommand | None = None
    if transport == McpTransport.STDIO:
        command = StdioCommand.objects.filter(name=stdio_command, enabled=True).first()
        if command is None:
            raise StdioCommandNotFound(field="stdio_command")
        url = ""
        auth_type = McpAuth.NONE
    else:
        if not url:
            raise ValidationFailed("A URL is required for this transport.", field="url")
        check_url(url, field="url")
    if auth_type == McpAuth.BEARER and not bearer_token:
        raise ValidationFailed("bearer_token is required for bearer auth.", field="bearer_token")
    try:
        with transaction.atomic():
            server = McpServer.objects.create(
                workspace=actor.workspace,
                name=name,
                transport=transport,
                url=url,
                stdio_command=command,
                auth_type=auth_type,
                headers=_normalise_headers(headers),
                bearer_token=bearer_token if auth_type == McpAuth.BEARER else "",
                timeout_seconds=timeout_seconds,
                created_by=actor.user,
            )
    except IntegrityError as exc:
        raise NameTaken(field="name") from exc
    if connect:
        server = mcp_server_refresh(server=server)
    return server


def mcp_server_update(
    *,
    actor: Actor,
    server: McpServer,
    name: str | None = None,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    bearer_token: str | None = None,
    timeout_seconds: int | None = None,
) -> McpServer:
    """Change a server's settings (secrets are replaced, never read back)."""
    actor.require_role(Role.MEMBER)
    if url is not None and server.transport != McpTransport.STDIO:
        check_url(url, field="url")
        server.url = url
    if name is not None:
        server.name = name
    if headers is not None:
        server.headers = _normalise_headers(headers)
    if bearer_token is not None:
        server.bearer_token = bearer_token
    if timeout_seconds is not None:
        server.timeout_seconds = timeout_seconds
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError as exc:
        raise NameTaken(field="name") from exc
    return server


def mcp_server_delete(*, actor: Actor, server: McpServer) -> None:
    """Delete a server and its tools."""
    actor.require_role(Role.MEMBER)
    server.delete()


def _set_status(server: McpServer, status: str, reason: str = "") -> None:
    server.status = status
    server.status_reason = reason[:1000]
    server.last_checked_at = timezone.now()


def mcp_server_refresh(*, server: McpServer) -> McpServer:
    """Connect, list tools/prompts/resources and sync the registry: new tools are added,
    changed ones updated, vanished ones marked unavailable. Sets status and reason."""
    if server.auth_type == McpAuth.OAUTH and not server.oauth_tokens:
        _set_status(server, McpStatus.NEEDS_AUTHORIZATION, "Authorize the server first.")
        server.save(update_fields=["status", "status_reason", "last_checked_at", "updated_at"])
        return server
    config = mcp_config_for(server)

    async def run() -> mcp_client.Discovery:
        return await mcp_client.discover(config)

    try:
        found = async_to_sync(run)()
    except Exception as exc:  # noqa: BLE001  (any failure to reach the server is a status)
        needs_auth = mcp_client.find_in_group(exc, mcp_client.AuthorizationRequired)
        if needs_auth is not None:
            _set_status(server, McpStatus.NEEDS_AUTHORIZATION, "Authorize the server first.")
        else:
            logger.info("MCP server %s refresh failed: %r", server.id, exc)
            _set_status(server, McpStatus.ERROR, mcp_client.describe_error(exc))
        server.save(update_fields=["status", "status_reason", "last_checked_at", "updated_at"])
        return server
    with transaction.atomic():
        _sync_mcp_tools(server, found.tools)
        server.server_info = found.server_info
        server.prompts = found.prompts
        server.resources = found.resources
        _set_status(server, McpStatus.CONNECTED)
        server.save()
    return server


def _sync_mcp_tools(server: McpServer, tools: list[dict[str, Any]]) -> None:
    existing = {t.remote_name: t for t in server.tools.all()}
    taken = set(
        Tool.objects.filter(workspace_id=server.workspace_id)
        .exclude(mcp_server=server)
        .values_list("name", flat=True)
    ) | {t.name for t in existing.values()}
    seen = set()
    for item in tools:
        remote = item["name"]
        seen.add(remote)
        row = existing.get(remote)
        annotations = item.get("annotations") or {}
        if row is None:
            name = tool_name(f"{server.name}_{remote}", taken=taken)
            taken.add(name)
            Tool.objects.create(
                workspace_id=server.workspace_id,
                name=name,
                description=item["description"],
                parameters=item["input_schema"],
                source=ToolSource.MCP,
                mcp_server=server,
                remote_name=remote,
                annotations=annotations,
                requires_approval=bool(annotations.get("destructiveHint"))
                and not annotations.get("readOnlyHint"),
            )
        else:
            row.description = item["description"]
            row.parameters = item["input_schema"]
            row.annotations = annotations
            row.available = True
            row.save(update_fields=["description", "parameters", "annotations", "available"])
    for remote, row in existing.items():
        if remote not in seen and row.available:
            row.available = False
            row.save(update_fields=["available", "updated_at"])


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def mcp_oauth_start(*, actor: Actor, server: McpServer, redirect_uri: str) -> str:
    """Begin the OAuth 2.1 authorization of a server: the SDK discovers the authorization
    server, registers the platform dynamically, and we return the URL the user must visit.
    The PKCE verifier and state are kept encrypted until the callback."""
    actor.require_role(Role.MEMBER)
    if server.auth_type != McpAuth.OAUTH:
        raise ValidationFailed("This server does not use OAuth.", field="auth_type")
    if server.oauth_client_info:
        registered = json.loads(server.oauth_client_info).get("redirect_uris") or []
        if redirect_uri not in registered:
            # Registered for another callback URL: register again.
            server.oauth_client_info = ""
            server.save(update_fields=["oauth_client_info", "updated_at"])
    config = mcp_config_for(server, redirect_uri=redirect_uri)
    pending: dict[str, Any] = {}

    async def remember(data: dict[str, Any]) -> None:
        pending.update(data)

    async def run() -> None:
        provider = mcp_client.PlatformOAuthProvider(
            server_id=server.id,
            server_url=server.url,
            redirect_uri=redirect_uri,
            on_pending=remember,
        )
        await mcp_client.discover(config, auth=provider)

    try:
        async_to_sync(run)()
    except Exception as exc:
        if not pending:
            raise OAuthFailed(
                f"Could not start the authorization: {mcp_client.describe_error(exc)}"
            ) from exc
    else:
        raise OAuthFailed("The server is already authorized.")
    server.refresh_from_db()
    server.oauth_pending = json.dumps(
        {
            "code_verifier": pending["code_verifier"],
            "redirect_uri": redirect_uri,
            "user_id": str(actor.user.id),
        }
    )
    server.oauth_state_hash = _state_hash(pending["state"])
    server.status = McpStatus.NEEDS_AUTHORIZATION
    server.save(update_fields=["oauth_pending", "oauth_state_hash", "status", "updated_at"])
    return str(pending["authorization_url"])


def mcp_oauth_complete(*, actor: Actor, state: str, code: str) -> McpServer:
    """Finish the authorization started by mcp_oauth_start: the SDK exchanges the code
    (with the PKCE verifier) for tokens, stored encrypted, then the server is refreshed.
    Raises OAuthFailed for an unknown state (also another workspace's)."""
    server = McpServer.objects.filter(
        workspace=actor.workspace, oauth_state_hash=_state_hash(state)
    ).first()
    if server is None or not server.oauth_pending:
        raise OAuthFailed("Unknown or expired authorization state.", field="state")
    pending = json.loads(server.oauth_pending)
    server.oauth_pending = ""
    server.oauth_state_hash = ""
    server.save(update_fields=["oauth_pending", "oauth_state_hash", "updated_at"])
    config = mcp_config_for(server, redirect_uri=pending["redirect_uri"])

    async def run() -> mcp_client.Discovery:
        provider = mcp_client.PlatformOAuthProvider(
            server_id=server.id,
            server_url=server.url,
            redirect_uri=pending["redirect_uri"],
            code=code,
            code_verifier=pending["code_verifier"],
        )
        return await mcp_client.discover(config, auth=provider)

    try:
        async_to_sync(run)()
    except Exception as exc:
        raise OAuthFailed(f"The token exchange failed: {mcp_client.describe_error(exc)}") from exc
    server.refresh_from_db()
    return mcp_server_refresh(server=server)


# --- OpenAPI imports --------------------------------------------------------------------

_METHODS = ("get", "post", "put", "patch", "delete")


def _load_document(raw: bytes | str) -> dict[str, Any]:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidOpenApi("The document is neither JSON nor YAML.") from exc
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3"):
        raise InvalidOpenApi("Only OpenAPI 3.x documents are supported.", field="document")
    if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        raise InvalidOpenApi("The document has no paths.", field="document")
    return doc


def _resolve_ref(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """Inline local $refs (#/components/...), bounded in depth (cycles end as {})."""
    if depth > 12:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                return {}
            target: Any = doc
            for part in ref[2:].split("/"):
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, dict)
                    else {}
                )
            return _resolve_ref(doc, target, depth + 1)
        return {k: _resolve_ref(doc, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_ref(doc, v, depth + 1) for v in node]
    return node


def openapi_operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each operation of the document as {name, description, parameters (JSON Schema),
    operation (method, path, parameter locations)}."""
    ops: list[dict[str, Any]] = []
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = item.get("parameters", [])
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            props: dict[str, Any] = {}
            required: list[str] = []
            locations: list[dict[str, str]] = []
            for param in [*shared, *op.get("parameters", [])]:
                param = _resolve_ref(doc, param)
                if not isinstance(param, dict) or param.get("in") not in (
                    "path",
                    "query",
                    "header",
                ):
                    continue
                pname = str(param.get("name", ""))
                if not pname:
                    continue
                schema = param.get("schema") or {"type": "string"}
                if param.get("description"):
                    schema = {**schema, "description": param["description"]}
                props[pname] = schema
                locations.append({"name": pname, "in": param["in"]})
                if param.get("required") or param["in"] == "path":
                    required.append(pname)
            body = _resolve_ref(doc, op.get("requestBody") or {})
            json_body = (body.get("content") or {}).get("application/json") if body else None
            if json_body is not None:
                props["body"] = json_body.get("schema") or {}
                if body.get("required"):
                    required.append("body")
            raw_name = op.get("operationId") or f"{method}_{path}"
            ops.append(
                {
                    "name": raw_name,
                    "description": (op.get("summary") or op.get("description") or "")[:1000],
                    "parameters": {
                        "type": "object",
                        "properties": props,
                        "required": sorted(set(required)),
                    },
                    "operation": {"method": method, "path": path, "parameters": locations},
                }
            )
    return ops


def openapi_import(
    *,
    actor: Actor,
    name: str,
    document: str | bytes | None = None,
    url: str = "",
    base_url: str = "",
    auth_type: str = OpenApiAuth.NONE,
    auth_name: str = "",
    credential: str = "",
) -> OpenApiSource:
    """Import an OpenAPI 3 document (inline, uploaded, or fetched from `url` through the
    guard): each operation becomes a Tool. Credentials are stored encrypted.
    Raises InvalidOpenApi, OutboundBlocked, NameTaken."""
    actor.require_role(Role.MEMBER)
    if document is None:
        if not url:
            raise ValidationFailed("Give a document, a file or a url.", field="url")
        try:
            response = fetch(url, max_bytes=IMPORT_MAX_BYTES, timeout=20)
        except OutboundError as exc:
            raise InvalidOpenApi(f"Could not fetch the document: {exc.message}") from exc
        if response.status_code != 200:
            raise InvalidOpenApi(f"Fetching the document gave HTTP {response.status_code}.")
        document = response.content
    doc = _load_document(document)
    if not base_url:
        servers = doc.get("servers") or []
        base_url = (
            str(servers[0].get("url", "")) if servers and isinstance(servers[0], dict) else ""
        )
        if base_url.startswith("/") and url:
            base_url = urljoin(url, base_url)
    if not base_url.startswith(("http://", "https://")):
        raise ValidationFailed("A base_url (http or https) is needed.", field="base_url")
    check_url(base_url, field="base_url")
    if auth_type in (OpenApiAuth.HEADER, OpenApiAuth.QUERY) and not auth_name:
        raise ValidationFailed("auth_name is required for this auth type.", field="auth_name")
    if auth_type != OpenApiAuth.NONE and not credential:
        raise ValidationFailed("credential is required for this auth type.", field="credential")
    operations = openapi_operations(doc)
    if not operations:
        raise InvalidOpenApi("The document has no operations.", field="document")
    try:
        with transaction.atomic():
            source = OpenApiSource.objects.create(
                workspace=actor.workspace,
                name=name,
                base_url=base_url,
                source_url=url,
                document=doc,
                auth_type=auth_type,
                auth_name=auth_name,
                credential=credential if auth_type != OpenApiAuth.NONE else "",
                created_by=actor.user,
            )
            taken = set(
                Tool.objects.filter(workspace=actor.workspace).values_list("name", flat=True)
            )
            for op in operations:
                tname = tool_name(f"{name}_{op['name']}", taken=taken)
                taken.add(tname)
                Tool.objects.create(
                    workspace=actor.workspace,
                    name=tname,
                    description=op["description"],
                    parameters=op["parameters"],
                    source=ToolSource.OPENAPI,
                    openapi_source=source,
                    operation=op["operation"],
                    requires_approval=op["operation"]["method"] != "get",
                )
    except IntegrityError as exc:
        raise NameTaken(field="name") from exc
    return source


def openapi_source_delete(*, actor: Actor, source: OpenApiSource) -> None:
    """Delete an import and its tools."""
    actor.require_role(Role.MEMBER)
    source.delete()


# --- skills ---------------------------------------------------------------------------


def skill_save(
    *,
    workspace: Workspace | None,
    user: User | None,
    parsed: ParsedSkill,
    source: str,
    source_url: str = "",
) -> SkillVersion:
    """Store `parsed` as the next version of the workspace's skill of that name (created
    on first save). `workspace=None` saves an operator system skill."""
    with transaction.atomic():
        skill = (
            Skill.objects.select_for_update().filter(workspace=workspace, name=parsed.name).first()
        )
        if skill is None:
            try:
                with transaction.atomic():
                    skill = Skill.objects.create(
                        workspace=workspace,
                        name=parsed.name,
                        description=parsed.description,
                        created_by=user,
                    )
            except IntegrityError as exc:
                raise NameTaken("A skill with this name was just created; retry.") from exc
        Skill.objects.filter(pk=skill.pk).update(latest_version=F("latest_version") + 1)
        skill.refresh_from_db()
        skill.description = parsed.description
        skill.save(update_fields=["description", "updated_at"])
        version = SkillVersion.objects.create(
            skill=skill,
            number=skill.latest_version,
            name=parsed.name,
            description=parsed.description,
            skill_md=parsed.skill_md,
            metadata=parsed.metadata,
            source=source,
            source_url=source_url,
            total_size=parsed.total_size,
            created_by=user,
        )
        SkillFile.objects.bulk_create(
            [
                SkillFile(version=version, path=path, content=content, size=len(content))
                for path, content in sorted(parsed.files.items())
            ]
        )
    return version


def skill_create(*, actor: Actor, skill_md: str) -> SkillVersion:
    """A skill (or its next version) from SKILL.md text. Raises InvalidSkill."""
    actor.require_role(Role.MEMBER)
    return skill_save(
        workspace=actor.workspace,
        user=actor.user,
        parsed=parse_skill_text(skill_md),
        source=SkillSource.API,
    )


def skill_upload(*, actor: Actor, data: bytes) -> SkillVersion:
    """A skill (or its next version) from a ZIP. Raises UnsafeArchive / InvalidSkill."""
    actor.require_role(Role.MEMBER)
    return skill_save(
        workspace=actor.workspace,
        user=actor.user,
        parsed=parse_skill_zip(data),
        source=SkillSource.UPLOAD,
    )


def skill_import_url(*, actor: Actor, url: str) -> SkillVersion:
    """A skill from a URL (a ZIP, or a SKILL.md), fetched through the outbound guard."""
    actor.require_role(Role.MEMBER)

    try:
        response = fetch(url, max_bytes=limit("SKILL_MAX_TOTAL_BYTES"), timeout=30)
    except OutboundError as exc:
        raise InvalidSkill(f"Could not fetch the skill: {exc.message}", field="url") from exc
    if response.status_code != 200:
        raise InvalidSkill(f"Fetching the skill gave HTTP {response.status_code}.", field="url")
    if response.content[:4] == b"PK\x03\x04":
        parsed = parse_skill_zip(response.content)
    else:
        parsed = parse_skill_text(response.text)
    return skill_save(
        workspace=actor.workspace,
        user=actor.user,
        parsed=parsed,
        source=SkillSource.URL,
        source_url=url,
    )


def skill_update(*, actor: Actor, skill: Skill, skill_md: str) -> SkillVersion:
    """A new version with this SKILL.md and the previous version's files. The name in the
    front matter must stay the skill's name."""
    actor.require_role(Role.MEMBER)
    if skill.workspace_id is None:
        raise InvalidSkill("System skills are managed by the operator.")
    name, description, meta = parse_skill_md(skill_md)
    if name != skill.name:
        raise InvalidSkill(f"The front matter name must stay {skill.name!r}.", field="skill_md")
    previous = skill.versions.order_by("-number").first()
    files = {f.path: bytes(f.content) for f in previous.files.all()} if previous else {}
    parsed = ParsedSkill(
        name=name, description=description, metadata=meta, skill_md=skill_md, files=files
    )
    return skill_save(
        workspace=skill.workspace, user=actor.user, parsed=parsed, source=SkillSource.API
    )


def skill_delete(*, actor: Actor, skill: Skill) -> None:
    """Delete a workspace skill and every version (system skills: admin only)."""
    actor.require_role(Role.MEMBER)
    if skill.workspace_id is None:
        raise InvalidSkill("System skills are managed by the operator.")
    skill.delete()


def stdio_command_resolve(*, name: str) -> StdioCommand:
    command = StdioCommand.objects.filter(name=name, enabled=True).first()
    if command is None:
        raise StdioCommandNotFound()
    return command


# --- remote A2A agents ----------------------------------------------------------------------


def remote_agent_tool_name(name: str) -> str:
    return ("ask_" + name.replace("-", "_"))[:64]


def _remote_tool_description(remote: RemoteAgent) -> str:
    card = remote.card or {}
    title = str(card.get("name") or remote.name)
    text = f'Delegate a task to the remote A2A agent "{title}" and return its answer.'
    if card.get("description"):
        text += " " + str(card["description"])
    skills = [
        str(s.get("name") or s.get("id")) for s in card.get("skills", []) if isinstance(s, dict)
    ]
    if skills:
        text += " Skills: " + ", ".join(skills[:20]) + "."
    return text[:1000]


def _auth_fields(auth_type: str, auth_header: str, credential: str) -> None:
    if auth_type != RemoteAgentAuth.NONE and not credential:
        raise ValidationFailed("A credential is required for this auth type.", field="credential")
    if auth_type == RemoteAgentAuth.HEADER and not re.match(
        r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$", auth_header or ""
    ):
        raise ValidationFailed("A valid header name is required.", field="auth_header")


def remote_agent_create(
    *,
    actor: Actor,
    name: str,
    url: str,
    auth_type: str = RemoteAgentAuth.NONE,
    auth_header: str = "",
    credential: str = "",
    timeout_seconds: int = 300,
    connect: bool = True,
) -> RemoteAgent:
    """Register a remote A2A agent and its tool (`ask_<name>`), then fetch its card (the
    status says how that went; a failure does not undo the registration).

    Raises OutboundBlocked (400 url_not_allowed) for a URL the guard refuses, NameTaken."""
    actor.require_role(Role.MEMBER)
    check_url(url, field="url")
    _auth_fields(auth_type, auth_header, credential)
    try:
        with transaction.atomic():
            remote = RemoteAgent.objects.create(
                workspace=actor.workspace,
                name=name,
                url=url,
                auth_type=auth_type,
                auth_header=auth_header if auth_type == RemoteAgentAuth.HEADER else "",
                credential=credential if auth_type != RemoteAgentAuth.NONE else "",
                timeout_seconds=timeout_seconds,
                created_by=actor.user,
            )
            Tool.objects.create(
                workspace=actor.workspace,
                name=remote_agent_tool_name(name),
                description=_remote_tool_description(remote),
                parameters=a2a_client.TASK_PARAMETERS,
                source=ToolSource.A2A,
                remote_agent=remote,
            )
    except IntegrityError as exc:
        raise NameTaken(field="name") from exc
    audit_record(
        action="remote_agent.create",
        actor_user=actor.user,
        workspace_id=actor.workspace_id,
        target_type="remote_agent",
        target_id=str(remote.id),
        metadata={"name": remote.name, "url": remote.url},
    )
    if connect:
        remote = remote_agent_refresh(remote=remote)
    return remote


def remote_agent_update(
    *,
    actor: Actor,
    remote: RemoteAgent,
    name: str | None = None,
    url: str | None = None,
    auth_type: str | None = None,
    auth_header: str | None = None,
    credential: str | None = None,
    timeout_seconds: int | None = None,
) -> RemoteAgent:
    """Change a remote agent's settings (the credential is replaced, never read back); a
    new URL or credential fetches the card again."""
    actor.require_role(Role.MEMBER)
    if url is not None:
        check_url(url, field="url")
        remote.url = url
    if name is not None:
        remote.name = name
    if auth_type is not None:
        remote.auth_type = auth_type
    if auth_header is not None:
        remote.auth_header = auth_header
    if credential is not None:
        remote.credential = credential
    if remote.auth_type == RemoteAgentAuth.NONE:
        remote.credential, remote.auth_header = "", ""
    _auth_fields(remote.auth_type, remote.auth_header, remote.credential)
    if timeout_seconds is not None:
        remote.timeout_seconds = timeout_seconds
    try:
        with transaction.atomic():
            remote.save()
            Tool.objects.filter(remote_agent=remote).update(
                name=remote_agent_tool_name(remote.name)
            )
    except IntegrityError as exc:
        raise NameTaken(field="name") from exc
    if url is not None or credential is not None or auth_type is not None:
        remote = remote_agent_refresh(remote=remote)
    return remote


def remote_agent_delete(*, actor: Actor, remote: RemoteAgent) -> None:
    """Delete a remote agent and its tool (agents using it lose the tool)."""
    actor.require_role(Role.MEMBER)
    audit_record(
        action="remote_agent.delete",
        actor_user=actor.user,
        workspace_id=actor.workspace_id,
        target_type="remote_agent",
        target_id=str(remote.id),
        metadata={"name": remote.name, "url": remote.url},
    )
    remote.delete()


def remote_agent_refresh(*, remote: RemoteAgent) -> RemoteAgent:
    """Fetch the remote agent's card through the outbound guard and keep it; the status
    and reason say how that went. Idempotent."""
    config = remote_config_for(remote)
    try:
        card = async_to_sync(a2a_client.fetch_card)(config)
    except (a2a_client.RemoteAgentError, OutboundError) as exc:
        remote.status = RemoteAgentStatus.ERROR
        remote.status_reason = a2a_client.describe(exc)[:1000]
        remote.save(update_fields=["status", "status_reason", "updated_at"])
        return remote
    with transaction.atomic():
        remote.card = card
        remote.card_fetched_at = timezone.now()
        remote.status = RemoteAgentStatus.CONNECTED
        remote.status_reason = ""
        remote.save()
        Tool.objects.filter(remote_agent=remote).update(
            description=_remote_tool_description(remote), available=True
        )
    return remote
