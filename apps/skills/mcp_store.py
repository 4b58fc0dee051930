"""What the MCP client keeps in the database: a server's OAuth registration and tokens
(encrypted columns of McpServer) and the needs-authorization flag. Below the services
and the client (mcp_client's OAuth storage calls it), so neither imports the other."""

import json
import uuid
from typing import Any

from django.utils import timezone

from apps.skills.choices import McpStatus
from apps.skills.models import McpServer


def mcp_server_mark_needs_authorization(*, server_id: uuid.UUID) -> None:
    McpServer.objects.filter(id=server_id).update(
        status=McpStatus.NEEDS_AUTHORIZATION,
        status_reason="Authorize the server first.",
        last_checked_at=timezone.now(),
    )


# OAuth storage (used by the SDK's OAuthClientProvider through DbTokenStorage).


def mcp_oauth_load(*, server_id: uuid.UUID) -> dict[str, Any]:
    """Stored OAuth client registration and tokens of a server (decrypted)."""
    server = McpServer.objects.filter(id=server_id).first()
    if server is None:
        return {}
    data: dict[str, Any] = {}
    if server.oauth_client_info:
        data["client_info"] = json.loads(server.oauth_client_info)
    if server.oauth_tokens:
        stored = json.loads(server.oauth_tokens)
        data["tokens"] = stored.get("tokens")
        data["expires_at"] = stored.get("expires_at")
    return data


def mcp_oauth_store_tokens(
    *, server_id: uuid.UUID, tokens: dict[str, Any], expires_at: float | None
) -> None:
    McpServer.objects.filter(id=server_id).update(
        oauth_tokens=json.dumps({"tokens": tokens, "expires_at": expires_at}),
        updated_at=timezone.now(),
    )


def mcp_oauth_store_client_info(*, server_id: uuid.UUID, client_info: dict[str, Any]) -> None:
    McpServer.objects.filter(id=server_id).update(
        oauth_client_info=json.dumps(client_info), updated_at=timezone.now()
    )
