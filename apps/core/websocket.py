"""ASGI wrappers for WebSocket connections."""

from typing import Any

from channels.security.websocket import AllowedHostsOriginValidator


class OriginCheckedUnlessBearer:
    """A browser's cookies ride along on a WebSocket from any page, so a connection that
    relies on them must come from an allowed origin (Channels' AllowedHostsOriginValidator).
    A connection carrying an `Authorization` header does not rely on cookies (a page
    cannot add that header), and non-browser clients send no Origin: it skips the check;
    the consumer then authenticates the header itself."""

    def __init__(self, application: Any) -> None:
        self.application = application
        self.checked = AllowedHostsOriginValidator(application)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if any(name == b"authorization" for name, _ in scope.get("headers", [])):
            return await self.application(scope, receive, send)
        return await self.checked(scope, receive, send)
