"""`/mcp`: the platform's own MCP endpoint (streamable HTTP). See mcp_server.py."""

from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from apps.conversations.mcp_server import handle_http
from apps.core.api.base import ApiView
from apps.users.actors import get_actor


def _scope(request: Request) -> dict[str, Any]:
    django_request = request._request
    scope = getattr(django_request, "scope", None)
    if scope is not None:
        return dict(scope)
    headers = [
        (k[5:].replace("_", "-").lower().encode(), str(v).encode())
        for k, v in django_request.META.items()
        if k.startswith("HTTP_")
    ]
    if django_request.META.get("CONTENT_TYPE"):
        headers.append((b"content-type", django_request.META["CONTENT_TYPE"].encode()))
    return {
        "type": "http",
        "method": django_request.method,
        "path": django_request.path,
        "raw_path": django_request.path.encode(),
        "query_string": django_request.META.get("QUERY_STRING", "").encode(),
        "headers": headers,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 0),
        "root_path": "",
        "http_version": "1.1",
    }


class McpView(ApiView):
    """MCP over streamable HTTP, authenticated like the API (API key, OAuth token)."""

    scope_area = "conversations"

    def _handle(self, request: Request) -> HttpResponse:
        actor = get_actor(request)
        body = request._request.body
        status, headers, content = async_to_sync(handle_http)(
            scope=_scope(request), body=body, actor=actor
        )
        response = HttpResponse(content, status=status)
        for name, value in headers:
            if name.lower() not in (b"content-length",):
                response[name.decode()] = value.decode()
        return response

    @extend_schema(exclude=True)
    def post(self, request: Request) -> HttpResponse:
        return self._handle(request)

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return self._handle(request)

    @extend_schema(exclude=True)
    def delete(self, request: Request) -> HttpResponse:
        return self._handle(request)
