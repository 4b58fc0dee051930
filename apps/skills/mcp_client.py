"""The MCP client side of the platform, on the official `mcp` SDK.

- `McpConfig`: everything needed to reach one registered server (secrets decrypted, in
  memory only).
- `discover(config)`: a fresh connection that lists tools, prompts and resources.
- `POOL.call_tool(config, name, arguments)`: calls go through one long-lived session per
  server and event loop, opened on first use, reopened after the server went away, with a
  timeout per call; whatever happens, the caller gets a `ToolResult`, never an exception.

HTTP transports (streamable HTTP and SSE) get an httpx2 client whose transport runs the
platform's outbound guard (`apps.core.outbound.AsyncGuardedTransport`): every connection
the SDK opens (requests, redirects it follows, OAuth discovery/registration/token calls)
is resolved, checked and pinned to the checked address.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import anyio
import httpx2
import mcp_types as mt
from asgiref.sync import sync_to_async
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.auth.exceptions import OAuthFlowError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from apps.core.outbound import AsyncGuardedTransport, OutboundBlocked, OutboundError, acheck_url
from apps.core.tools import ToolResult
from apps.skills.choices import McpTransport

logger = logging.getLogger(__name__)

MAX_RESULT_CHARS = 100_000
IDLE_SECONDS = 300.0  # a pooled session unused this long is closed
CLIENT_INFO = mt.Implementation(name="agent-platform", version="0.1.0")


class AuthorizationRequired(Exception):
    """The server needs an OAuth authorization by a person (start it through the API)."""

    def __init__(self, url: str = "") -> None:
        super().__init__("The MCP server requires OAuth authorization.")
        self.url = url


# --- outbound guard for httpx2 ------------------------------------------------------------


def guarded_http_client(
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """An httpx2 client for the MCP SDK's transports (signature of McpHttpClientFactory)."""
    return httpx2.AsyncClient(
        transport=AsyncGuardedTransport(max_bytes=None),
        headers=headers,
        timeout=timeout or httpx2.Timeout(30.0, read=300.0),
        auth=auth,
        follow_redirects=False,
        trust_env=False,
    )


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class McpConfig:
    """How to reach one server. `fingerprint` changes whenever the registration does, so a
    pooled session opened with an old configuration is replaced."""

    server_id: uuid.UUID
    transport: str
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str = ""
    timeout: float = 60.0
    oauth: bool = False
    oauth_redirect_uri: str = ""
    fingerprint: str = field(default="", compare=False)


def config_fingerprint(config: McpConfig) -> str:
    raw = json.dumps(
        [
            str(config.server_id),
            config.transport,
            config.url,
            config.headers,
            config.command,
            config.args,
            config.env,
            config.cwd,
            config.timeout,
            config.oauth,
        ],
        default=str,
    )
    return hashlib.sha256(raw.encode()).hexdigest()


# --- OAuth 2.1 (the SDK's OAuthClientProvider, tokens in the database) --------------------


class DbTokenStorage(TokenStorage):
    """Token storage backed by McpServer's encrypted columns."""

    def __init__(self, server_id: uuid.UUID) -> None:
        self.server_id = server_id

    async def get_tokens(self) -> OAuthToken | None:
        from apps.skills.services import mcp_oauth_load

        data = await sync_to_async(mcp_oauth_load)(server_id=self.server_id)
        tokens = data.get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        from apps.skills.services import mcp_oauth_store_tokens

        payload = tokens.model_dump(mode="json")
        expires_at = time.time() + tokens.expires_in if tokens.expires_in else None
        await sync_to_async(mcp_oauth_store_tokens)(
            server_id=self.server_id, tokens=payload, expires_at=expires_at
        )

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        from apps.skills.services import mcp_oauth_load

        data = await sync_to_async(mcp_oauth_load)(server_id=self.server_id)
        info = data.get("client_info")
        return OAuthClientInformationFull.model_validate(info) if info else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        from apps.skills.services import mcp_oauth_store_client_info

        await sync_to_async(mcp_oauth_store_client_info)(
            server_id=self.server_id, client_info=client_info.model_dump(mode="json")
        )


class PlatformOAuthProvider(OAuthClientProvider):
    """The SDK's OAuth 2.1 client (discovery, dynamic registration, PKCE, refresh), with
    the one interactive step split in two requests, as a web platform needs:

    - without `code`: the authorization URL is built, the PKCE verifier and state are
      saved (encrypted) and AuthorizationRequired(url) is raised for the API to return;
    - with `code` (from our callback): the SDK exchanges it and stores the tokens.
    Tokens loaded from the database keep their expiry, so an expired access token is
    refreshed with the refresh token before the request, not after a 401."""

    def __init__(
        self,
        *,
        server_id: uuid.UUID,
        server_url: str,
        redirect_uri: str,
        code: str | None = None,
        code_verifier: str | None = None,
        on_pending: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(
            server_url=server_url,
            client_metadata=OAuthClientMetadata(
                redirect_uris=[redirect_uri],  # type: ignore[list-item]
                client_name="Agent platform",
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",  # noqa: S106  (a public PKCE client)
            ),
            storage=DbTokenStorage(server_id),
        )
        self.server_id = server_id
        self._code = code
        self._code_verifier = code_verifier
        self._on_pending = on_pending

    async def _initialize(self) -> None:
        from apps.skills.services import mcp_oauth_load

        await super()._initialize()
        data = await sync_to_async(mcp_oauth_load)(server_id=self.server_id)
        if data.get("expires_at"):
            self.context.token_expiry_time = float(data["expires_at"])

    async def _perform_authorization_code_grant(self) -> tuple[str, str]:
        if self._code and self._code_verifier:
            return self._code, self._code_verifier
        ctx = self.context
        if not ctx.client_info:
            raise OAuthFlowError("No client registration available for authorization")
        if ctx.oauth_metadata and ctx.oauth_metadata.authorization_endpoint:
            endpoint = str(ctx.oauth_metadata.authorization_endpoint)
        else:
            endpoint = urljoin(ctx.get_authorization_base_url(ctx.server_url), "/authorize")
        from mcp.client.auth import PKCEParameters

        pkce = PKCEParameters.generate()
        state = secrets.token_urlsafe(32)
        assert ctx.client_metadata.redirect_uris
        params = {
            "response_type": "code",
            "client_id": ctx.client_info.client_id,
            "redirect_uri": str(ctx.client_metadata.redirect_uris[0]),
            "state": state,
            "code_challenge": pkce.code_challenge,
            "code_challenge_method": "S256",
        }
        if ctx.should_include_resource_param(ctx.protocol_version):
            params["resource"] = ctx.get_resource_url()
        if ctx.client_metadata.scope:
            params["scope"] = ctx.client_metadata.scope
        url = f"{endpoint}?{urlencode(params)}"
        if self._on_pending is not None:
            await self._on_pending(
                {"state": state, "code_verifier": pkce.code_verifier, "authorization_url": url}
            )
        raise AuthorizationRequired(url)


# --- connecting ---------------------------------------------------------------------------


def _transport_for(config: McpConfig, auth: httpx2.Auth | None) -> Any:
    headers = dict(config.headers)
    if config.transport == McpTransport.STDIO:
        return None
    if config.transport == McpTransport.SSE:
        return sse_client(
            config.url,
            headers=headers,
            timeout=min(config.timeout, 30.0),
            httpx_client_factory=guarded_http_client,
            auth=auth,
        )
    http_client = guarded_http_client(
        headers=headers, timeout=httpx2.Timeout(min(config.timeout, 30.0), read=300.0), auth=auth
    )
    return _owned_client_transport(config.url, http_client)


@contextlib.asynccontextmanager
async def _owned_client_transport(url: str, http_client: httpx2.AsyncClient) -> AsyncIterator[Any]:
    async with http_client, streamable_http_client(url, http_client=http_client) as streams:
        yield streams


def build_client(config: McpConfig, *, auth: httpx2.Auth | None = None) -> Client:
    """An un-entered SDK Client for `config`."""
    if config.transport == McpTransport.STDIO:
        server: Any = StdioServerParameters(
            command=config.command,
            args=list(config.args),
            env=dict(config.env) or None,
            cwd=config.cwd or None,
        )
    else:
        if auth is None and config.oauth:
            auth = PlatformOAuthProvider(
                server_id=config.server_id,
                server_url=config.url,
                redirect_uri=config.oauth_redirect_uri or "https://localhost/invalid",
            )
        server = _transport_for(config, auth)
    return Client(
        server,
        read_timeout_seconds=config.timeout,
        client_info=CLIENT_INFO,
        cache=None,
    )


def describe_error(exc: BaseException) -> str:
    """A readable one-line reason for a connection or call failure (no secrets)."""
    if isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        if inner:
            return describe_error(inner[0])
    if isinstance(exc, AuthorizationRequired):
        return "The server requires OAuth authorization."
    if isinstance(exc, OutboundBlocked | OutboundError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "Timed out."
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from the server."
    if isinstance(exc, httpx2.ConnectError):
        return "Could not connect to the server."
    if isinstance(exc, httpx2.HTTPError):
        return f"Connection to the server failed: {type(exc).__name__}."
    if isinstance(exc, MCPError):
        return f"MCP error: {exc}"
    message = str(exc) or type(exc).__name__
    return message[:500]


def find_in_group(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_in_group(inner, kind)
            if found is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and isinstance(cause, kind):
        return cause
    return None


@dataclass
class Discovery:
    server_info: dict[str, Any]
    tools: list[dict[str, Any]]
    prompts: list[dict[str, Any]]
    resources: list[dict[str, Any]]


async def _list_all(fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(100):
        page = await fetch(cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if not cursor:
            break
    return items


async def discover(config: McpConfig, *, auth: httpx2.Auth | None = None) -> Discovery:
    """Connect, initialize, list tools (and prompts/resources when the server has them).
    Raises whatever the connection raised (callers turn it into a status)."""
    if config.transport != McpTransport.STDIO:
        await acheck_url(config.url)
    with anyio.fail_after(config.timeout):
        async with build_client(config, auth=auth) as client:
            caps = client.server_capabilities
            tools = await _list_all(
                lambda c: client.list_tools(cursor=c, cache_mode="refresh"), "tools"
            )
            prompts: list[Any] = []
            resources: list[Any] = []
            if caps.prompts is not None:
                prompts = await _list_all(lambda c: client.list_prompts(cursor=c), "prompts")
            if caps.resources is not None:
                resources = await _list_all(lambda c: client.list_resources(cursor=c), "resources")
            info = client.server_info
            return Discovery(
                server_info={
                    "name": info.name if info else "",
                    "version": info.version if info else "",
                    "protocol_version": client.protocol_version,
                    "instructions": client.instructions or "",
                },
                tools=[
                    {
                        "name": t.name,
                        "description": t.description or t.title or "",
                        "input_schema": t.input_schema or {"type": "object", "properties": {}},
                        # MCP's own names (`destructiveHint`), as docs/mcp.md and the
                        # approval rule read them: the SDK's Python names are snake_case.
                        "annotations": t.annotations.model_dump(
                            mode="json", exclude_none=True, by_alias=True
                        )
                        if t.annotations
                        else {},
                    }
                    for t in tools
                ],
                prompts=[
                    {
                        "name": p.name,
                        "description": p.description or "",
                        "arguments": [
                            a.model_dump(mode="json", exclude_none=True, by_alias=True)
                            for a in (p.arguments or [])
                        ],
                    }
                    for p in prompts
                ],
                resources=[
                    {
                        "name": r.name,
                        "uri": str(r.uri),
                        "description": r.description or "",
                        "mime_type": r.mime_type or "",
                    }
                    for r in resources
                ],
            )


# --- results ------------------------------------------------------------------------------


def map_call_result(result: mt.CallToolResult) -> ToolResult:
    """CallToolResult -> ToolResult: text joined; images, audio and resources kept in
    `data["content"]`; structured content in `data["structured"]`; isError kept."""
    texts: list[str] = []
    blocks: list[dict[str, Any]] = []
    for block in result.content:
        if isinstance(block, mt.TextContent):
            texts.append(block.text)
        elif isinstance(block, mt.ImageContent):
            texts.append(f"[image {block.mime_type}]")
            blocks.append({"type": "image", "mimeType": block.mime_type, "data": block.data})
        elif isinstance(block, mt.AudioContent):
            texts.append(f"[audio {block.mime_type}]")
            blocks.append({"type": "audio", "mimeType": block.mime_type, "data": block.data})
        elif isinstance(block, mt.EmbeddedResource):
            res = block.resource
            text = getattr(res, "text", None)
            if text is not None:
                texts.append(text)
            blocks.append(
                {
                    "type": "resource",
                    **res.model_dump(mode="json", exclude_none=True, by_alias=True),
                }
            )
        elif isinstance(block, mt.ResourceLink):
            texts.append(f"[resource {block.uri}]")
            blocks.append({"type": "resource_link", "uri": str(block.uri), "name": block.name})
    content = "\n".join(texts)
    data: dict[str, Any] = {}
    if blocks:
        data["content"] = blocks
    if result.structured_content is not None:
        data["structured"] = result.structured_content
        if not content:
            content = json.dumps(result.structured_content)
    if len(content) > MAX_RESULT_CHARS:
        content = content[:MAX_RESULT_CHARS] + "\n[truncated]"
    return ToolResult(content=content, is_error=bool(result.is_error), data=data)


# --- the pool -----------------------------------------------------------------------------


class _Session:
    """One open SDK Client, owned by a background task (anyio scopes must be exited by
    the task that entered them); callers use it from their own tasks."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.client: Client | None = None
        self.ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.dead = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.last_used = time.monotonic()

    async def _run(self) -> None:
        try:
            async with build_client(self.config) as client:
                self.client = client
                self.ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            if not self.dead.done():
                self.dead.set_result(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if not self.dead.done():
                self.dead.set_result(None)
            self.closed.set()

    @property
    def alive(self) -> bool:
        return self.ready.done() and not self.dead.done()

    async def close(self) -> None:
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed.wait()), 5)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


class McpPool:
    """Sessions per (event loop, server); see the module docstring."""

    def __init__(self) -> None:
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[uuid.UUID, _Session]
        ] = weakref.WeakKeyDictionary()
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[uuid.UUID, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def _loop_sessions(self) -> dict[uuid.UUID, _Session]:
        return self._sessions.setdefault(asyncio.get_running_loop(), {})

    def _lock(self, server_id: uuid.UUID) -> asyncio.Lock:
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(server_id, asyncio.Lock())

    async def _reap_idle(self, sessions: dict[uuid.UUID, _Session]) -> None:
        """Close sessions unused for IDLE_SECONDS (a stdio server is a process)."""
        now = time.monotonic()
        for server_id, session in list(sessions.items()):
            if now - session.last_used > IDLE_SECONDS and sessions.get(server_id) is session:
                sessions.pop(server_id, None)
                await session.close()

    async def _session(self, config: McpConfig) -> tuple[_Session, bool]:
        """The server's session, opening one if needed. Concurrent callers share a session
        that is still connecting (they all wait for it) instead of replacing it: only a
        dead session, or one for an older configuration, is replaced. Returns (session,
        reused): `reused` is true for a session that was already open before this call."""
        sessions = self._loop_sessions()
        await self._reap_idle(sessions)
        async with self._lock(config.server_id):
            current = sessions.get(config.server_id)
            if current is not None and not current.dead.done() and current.config == config:
                session, reused = current, current.ready.done()
            else:
                if current is not None:
                    sessions.pop(config.server_id, None)
                    await current.close()
                if config.transport != McpTransport.STDIO:
                    await acheck_url(config.url)
                session, reused = _Session(config), False
                sessions[config.server_id] = session
        try:
            await asyncio.wait_for(asyncio.shield(session.ready), config.timeout)
        except BaseException:
            await self._discard(config.server_id, session)
            raise
        return session, reused

    async def _discard(self, server_id: uuid.UUID, session: _Session) -> None:
        """Close `session` and forget it, unless another caller already replaced it."""
        sessions = self._loop_sessions()
        if sessions.get(server_id) is session:
            sessions.pop(server_id, None)
        await session.close()

    async def discard(self, server_id: uuid.UUID) -> None:
        session = self._loop_sessions().pop(server_id, None)
        if session is not None:
            await session.close()

    async def aclose(self) -> None:
        """Close every session of the running loop (tests, worker shutdown)."""
        sessions = self._loop_sessions()
        while sessions:
            _, session = sessions.popitem()
            await session.close()

    async def call_tool(
        self, config: McpConfig, name: str, arguments: dict[str, Any]
    ) -> ToolResult:
        """Call `name` on the server. Never raises: failures are ToolResult(is_error=True).
        A reused session that turns out dead is reopened once before giving up."""
        for attempt in (1, 2):
            try:
                session, reused = await self._session(config)
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if find_in_group(exc, AuthorizationRequired):
                    await _mark_needs_auth(config.server_id)
                return _error(f"MCP server unavailable: {describe_error(exc)}")
            assert session.client is not None
            call = asyncio.ensure_future(
                session.client.call_tool(name, arguments, read_timeout_seconds=config.timeout)
            )
            done, _ = await asyncio.wait(
                {call, session.dead}, timeout=config.timeout, return_when=asyncio.FIRST_COMPLETED
            )
            session.last_used = time.monotonic()
            if call in done:
                error = call.exception()
                if error is None:
                    return map_call_result(call.result())
                if isinstance(error, MCPError) and error.code != mt.CONNECTION_CLOSED:
                    return _error(f"MCP error from the server: {error}")
                await self._discard(config.server_id, session)
                if reused and attempt == 1 and isinstance(error, MCPError):
                    continue
                return _error(f"MCP server connection failed: {describe_error(error)}")
            call.cancel()
            with contextlib.suppress(BaseException):
                await call
            if session.dead in done:
                await self._discard(config.server_id, session)
                return _error(
                    "The MCP server connection was lost during the call "
                    f"({describe_error(session.dead.result() or RuntimeError('closed'))})."
                )
            await self._discard(config.server_id, session)
            return _error(f"The MCP tool call timed out after {config.timeout:g} s.")
        return _error("The MCP server is unavailable.")


async def call_tool_once(config: McpConfig, name: str, arguments: dict[str, Any]) -> ToolResult:
    """Call `name` over a connection of its own, closed afterwards (direct executions from
    the API, which must not touch the sessions pooled for runs). Never raises."""
    try:
        if config.transport != McpTransport.STDIO:
            await acheck_url(config.url)
        with anyio.fail_after(config.timeout):
            async with build_client(config) as client:
                result = await client.call_tool(
                    name, arguments, read_timeout_seconds=config.timeout
                )
    except Exception as exc:  # noqa: BLE001  (every failure becomes the call's result)
        if find_in_group(exc, AuthorizationRequired):
            await _mark_needs_auth(config.server_id)
        if isinstance(exc, MCPError) and exc.code != mt.CONNECTION_CLOSED:
            return _error(f"MCP error from the server: {exc}")
        return _error(f"MCP server call failed: {describe_error(exc)}")
    return map_call_result(result)


def _error(message: str) -> ToolResult:
    return ToolResult(content=message, is_error=True)


async def _mark_needs_auth(server_id: uuid.UUID) -> None:
    from apps.skills.services import mcp_server_mark_needs_authorization

    await sync_to_async(mcp_server_mark_needs_authorization)(server_id=server_id)


POOL = McpPool()
