"""OpenAPI description of the stream ticket credential."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class StreamTicketScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "apps.conversations.authentication.StreamTicketAuthentication"
    name = "streamTicket"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "query",
            "name": "ticket",
            "description": "A single-use stream ticket from POST "
            "/conversations/{id}/stream-tickets (60 s), for EventSource.",
        }
