"""`/mcp`: the platform's own MCP endpoint (streamable HTTP). See mcp_server.py.

Authenticated like the API (API key, OAuth token, session) by DRF's own code; a read
scope on conversations is enough to `initialize` and list the tools, calling a tool (which
starts a run) needs the write scope (checked in mcp_server). The connection is then handed
to the official SDK's ASGI application on the event loop (an `AsgiHandoff`: no thread is
held while an agent answers).
"""

from django.http import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from apps.conversations.mcp_server import ACTOR_SCOPE_KEY, asgi_app
from apps.core.api.asyncview import AsgiHandoff, AsyncApiView
from apps.users.actors import get_actor


class McpView(AsyncApiView):
    """MCP over streamable HTTP, authenticated like the API (API key, OAuth token)."""

    scope_area = "conversations"
    # JSON-RPC over POST: `initialize` and `tools/list` only read; `tools/call` checks
    # the write scope itself (mcp_server._call_tool).
    scope_read_methods = ("GET", "HEAD", "OPTIONS", "POST", "DELETE")

    def _handle(self, request: Request) -> AsgiHandoff:
        django_request = request._request
        if not getattr(django_request, "threadless", False):
            # Django's test client or WSGI: there is no connection to hand over.
            raise RuntimeError("/mcp is served over ASGI only")
        scope = {**django_request.scope, ACTOR_SCOPE_KEY: get_actor(request)}  # type: ignore[attr-defined]
        return AsgiHandoff(asgi_app, scope=scope, body=django_request.body)

    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponseBase:
        return self._handle(request)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponseBase:
        return self._handle(request)

    @extend_schema(exclude=True)
    def delete(self, request: Request) -> HttpResponseBase:
        return self._handle(request)
