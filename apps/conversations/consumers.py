"""WebSocket stream of a conversation: the same JSON events as SSE, one per frame.

ws(s)://host/ws/v1/conversations/<id>/stream?cursor=N[&ticket=T]
Authenticated like the REST API: an `Authorization: Bearer` header (API key, OAuth2
token, app JWT; its scopes must allow reading conversations), else a stream ticket, else
the browser session (whose Origin must be an allowed host: see `config/asgi.py`). The
access check is the same `access_conversation` selector. Resume exactly like SSE with
`cursor`.
"""

import asyncio
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.exceptions import AuthenticationFailed

from apps.conversations.exceptions import InvalidCursor
from apps.conversations.selectors import access_conversation
from apps.conversations.services import stream_ticket_consume
from apps.conversations.streaming import events_after, parse_cursor
from apps.core.db import db_sync_to_async
from apps.core.events import StreamError
from apps.core.exceptions import ApplicationError
from apps.users.actors import SESSION_CREDENTIAL, Actor, actor_resolve
from apps.users.authentication import authenticate_bearer


class ScopeDenied(PermissionError):
    pass


_UNAUTHORIZED = "Authentication credentials were not provided or are not valid."
_FORBIDDEN = "This credential's scopes do not allow reading conversations."


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _resolve_sync(scope: dict[str, Any], conversation_id: str) -> tuple[Actor, uuid.UUID]:
    query = parse_qs(scope.get("query_string", b"").decode())
    token = (query.get("ticket") or [""])[0]
    authorization = _header(scope, b"authorization")
    workspace_header = None
    if authorization:
        try:
            user, credential = authenticate_bearer(authorization)
        except AuthenticationFailed as exc:
            raise PermissionError("invalid bearer token") from exc
        actor = actor_resolve(
            user=user,
            credential=credential,
            requested_workspace_id=_header(scope, b"x-workspace-id"),
        )
        if not actor.allows("conversations", write=False):
            raise ScopeDenied("the token's scopes do not allow reading conversations")
        return actor, access_conversation(actor=actor, conversation_id=conversation_id).id
    if token:
        ticket = stream_ticket_consume(token=token)
        if ticket is None or not ticket.user.is_active:
            raise PermissionError("invalid ticket")
        if str(ticket.conversation_id) != conversation_id:
            raise PermissionError("ticket for another conversation")
        user = ticket.user
        workspace_header = str(ticket.workspace_id)
    else:
        user = scope.get("user")  # type: ignore[assignment]
        if user is None or not user.is_authenticated or not user.is_active:
            raise PermissionError("not authenticated")
        workspace_header = _header(scope, b"x-workspace-id")
    actor = actor_resolve(
        user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=workspace_header
    )
    conv = access_conversation(actor=actor, conversation_id=conversation_id)
    return actor, conv.id


class ConversationStreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self._task: asyncio.Task[None] | None = None
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            _, conv_id = await db_sync_to_async(_resolve_sync)(self.scope, str(conversation_id))
            cursor = parse_cursor(None, (query.get("cursor") or [None])[0])
        except ScopeDenied:
            await self._refuse(4403, StreamError(code="forbidden", message=_FORBIDDEN))
            return
        except PermissionError:
            await self._refuse(4401, StreamError(code="unauthorized", message=_UNAUTHORIZED))
            return
        except InvalidCursor as exc:
            await self._refuse(4400, StreamError(code=exc.code, message=str(exc.message)))
            return
        except ApplicationError as exc:
            await self._refuse(4404, StreamError(code=exc.code, message=str(exc.message)))
            return
        await self.accept()
        self._task = asyncio.get_running_loop().create_task(self._relay(conv_id, cursor))

    async def _refuse(self, code: int, error: StreamError) -> None:
        """Refusals are close codes a client can read (a refused handshake would only be
        a bare 403): accept, send the error frame, close with `code`."""
        await self.accept()
        await self.send(text_data=error.to_json())
        await self.close(code=code)

    async def _relay(self, conversation_id: uuid.UUID, cursor: int | None) -> None:
        async for item in events_after(conversation_id=conversation_id, after=cursor):
            await self.send(text_data=item.to_json())  # an event, or the heartbeat frame

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is one-way; sending and cancelling go through the REST API.
        return None
