"""The stream ticket: a short-lived, single-use credential in `?ticket=` for browsers'
EventSource (which cannot send an Authorization header), valid for one conversation."""

import uuid
from typing import Any

from rest_framework import authentication
from rest_framework.request import Request

from apps.conversations.exceptions import ConversationNotFound, InvalidStreamTicket
from apps.conversations.services import stream_ticket_consume
from apps.users.actors import Credential
from apps.users.choices import CredentialKind


class StreamTicketAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Credential] | None:
        token = request.query_params.get("ticket")
        if not token:
            return None
        ticket = stream_ticket_consume(token=token)
        if ticket is None or not ticket.user.is_active:
            raise InvalidStreamTicket()
        request._request.stream_ticket_conversation_id = ticket.conversation_id  # type: ignore[attr-defined]
        return ticket.user, Credential(
            kind=CredentialKind.SESSION,
            pk=f"ticket:{ticket.id}",
            workspace_id=ticket.workspace_id,
            scopes=frozenset({"conversations:read"}),
        )

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    @staticmethod
    def check_conversation(request: Request, conversation_id: uuid.UUID) -> None:
        """A ticket opens only the conversation it was issued for."""
        allowed = getattr(request._request, "stream_ticket_conversation_id", None)
        if allowed is not None and allowed != conversation_id:
            raise ConversationNotFound()
