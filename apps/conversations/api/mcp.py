"""`/mcp`: the platform's own MCP endpoint (streamable HTTP). See mcp_server.py.

Authenticated like the API (API key, OAuth token, session) by DRF's own code; a read
scope on conversations is enough to `initialize` and list the tools, calling a tool (which
starts a run) needs the write scope (checked in mcp_server). The request is then handed to
the official SDK's session manager on the event loop (a `DeferredResponse`: no thread is
held while an agent answers).
"""

from typing import Any

from django.http import HttpResponse, HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from apps.conversations.mcp_server import handle_http
from apps.core.api.asyncview import AsyncApiView, DeferredResponse
from apps.users.actors import get_actor


def _scope(request: Request) -> dict[str, Any]:
    django_request = request._request
    scope = getattr(django_request, "scope", None)
    if scope is None:  # not served by an ASGI server (Django's test client)
        raise RuntimeError("/mcp is served over ASGI only")
    return dict(scope)


class McpView(AsyncApiView):
    """MCP over streamable HTTP, authenticated like the API (API key, OAuth token)."""

    scope_area = "conversations"
    # JSON-RPC over POST: `initialize` and `tools/list` only read; `tools/call` checks
    # the write scope itself (mcp_server._call_tool).
    scope_read_methods = ("GET", "HEAD", "OPTIONS", "POST", "DELETE")

    def _handle(self, request: Request) -> DeferredResponse:
        actor = get_actor(request)
        scope, body = _scope(request), request._request.body

        async def complete() -> HttpResponseBase:
            status, headers, content = await handle_http(scope=scope, body=body, actor=actor)
            response = HttpResponse(content, status=status)
            for name, value in headers:
                if name.lower() not in (b"content-length",):
                    response[name.decode()] = value.decode()
            return response

        return DeferredResponse(complete)

    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponseBase:
        return self._handle(request)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponseBase:
        return self._handle(request)

    @extend_schema(exclude=True)
    def delete(self, request: Request) -> HttpResponseBase:
        return self._handle(request)
