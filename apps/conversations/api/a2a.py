"""The A2A endpoints (see conversations/a2a.py): agent cards and JSON-RPC endpoints.

- `GET /.well-known/agent-card.json` and `GET /a2a/.well-known/agent-card.json`: the
  workspace's card (one skill and one interface per agent the credential may use);
- `POST /a2a`: the workspace's JSON-RPC endpoint (the request's `tenant` = an agent slug);
- `GET /a2a/agents/<slug>/.well-known/agent-card.json`: one agent's card;
- `POST /a2a/agents/<slug>/rpc`: that agent's JSON-RPC endpoint (the card's interface URL).

Authenticated like the API (API key, OAuth token, session), scope area `conversations`:
reading for cards, `GetTask` and `SubscribeToTask`; writing for sending and cancelling.
An agent the credential may not use is 404 `agent_not_found`. The RPC connection is then
handed to the SDK's JSON-RPC dispatcher on the event loop (an `AsgiHandoff`).
"""

from typing import Any

import orjson
from django.http import HttpResponseBase, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request

from apps.agents.selectors import agent_by_id_or_slug, agents_usable_by
from apps.conversations.a2a import (
    ACTOR_SCOPE_KEY,
    AGENT_SCOPE_KEY,
    BASE_URL_SCOPE_KEY,
    WRITE_METHODS,
    agent_card,
    asgi_app,
    card_to_dict,
    workspace_card,
)
from apps.core.api.asyncview import AsgiHandoff, AsyncApiView, asgi_scope_of, serve_buffered
from apps.core.api.base import ApiView
from apps.users.actors import get_actor

TAGS = ["a2a"]

_CARD = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="An A2A AgentCard (protocol 1.0, JSON as the a2a-sdk writes it).",
)


class A2aRpcRequestSerializer(serializers.Serializer):
    """A JSON-RPC 2.0 request of the A2A protocol (documentation only: the SDK parses)."""

    jsonrpc = serializers.ChoiceField(choices=["2.0"])
    id = serializers.JSONField(required=False, help_text="A string, an integer or null.")
    method = serializers.CharField(
        help_text="SendMessage, SendStreamingMessage, GetTask, CancelTask, SubscribeToTask "
        "(v0.3 names such as message/send are accepted too)."
    )
    params = serializers.DictField(required=False)


_RPC_REQUEST = A2aRpcRequestSerializer
_RPC_RESPONSES = {
    (200, "application/json"): OpenApiResponse(
        response=OpenApiTypes.OBJECT, description="A JSON-RPC 2.0 response (result or error)."
    ),
    (200, "text/event-stream"): OpenApiResponse(
        response=OpenApiTypes.STR,
        description="For SendStreamingMessage and SubscribeToTask: SSE, each `data:` a "
        "JSON-RPC response whose result is a StreamResponse.",
    ),
}


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/").rstrip("/")


class A2aWorkspaceCardView(ApiView):
    """The workspace's A2A agent card: every agent the credential may use."""

    scope_area = "conversations"
    envelope = False

    @extend_schema(operation_id="a2a_workspace_card", responses={200: _CARD}, tags=TAGS)
    def get(self, request: Request) -> JsonResponse:
        actor = get_actor(request)
        agents = list(agents_usable_by(actor=actor).order_by("slug")[:100])
        card = workspace_card(
            workspace_name=actor.workspace.name, agents=agents, base_url=_base_url(request)
        )
        return JsonResponse(card_to_dict(card), json_dumps_params={"ensure_ascii": False})


class A2aWellKnownCardView(A2aWorkspaceCardView):
    """The workspace's A2A agent card at the site's well-known path."""

    @extend_schema(operation_id="a2a_well_known_card", responses={200: _CARD}, tags=TAGS)
    def get(self, request: Request) -> JsonResponse:
        return super().get(request)


class A2aAgentCardView(ApiView):
    """One agent's A2A agent card (404 `agent_not_found` for an agent the credential may
    not use)."""

    scope_area = "conversations"
    envelope = False

    @extend_schema(operation_id="a2a_agent_card", responses={200: _CARD}, tags=TAGS)
    def get(self, request: Request, slug: str) -> JsonResponse:
        agent = agent_by_id_or_slug(actor=get_actor(request), ref=slug)
        card = agent_card(agent=agent, base_url=_base_url(request))
        return JsonResponse(card_to_dict(card), json_dumps_params={"ensure_ascii": False})


def _method_of(body: bytes) -> str:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""  # the SDK answers the parse error
    return str(parsed.get("method", "")) if isinstance(parsed, dict) else ""


class _RpcView(AsyncApiView):
    scope_area = "conversations"
    # JSON-RPC over POST: reading methods need the read scope, writing ones the write
    # scope (checked in `_handoff` from the request's method).
    scope_read_methods = ("GET", "HEAD", "OPTIONS", "POST")
    envelope = False

    def _handoff(self, request: Request, agent: Any) -> HttpResponseBase:
        django_request = request._request
        actor = get_actor(request)
        body = django_request.body
        if _method_of(body) in WRITE_METHODS and not actor.allows("conversations", write=True):
            self.permission_denied(request, message="This credential's scopes do not allow this.")
        threadless = getattr(django_request, "threadless", False)
        scope = {
            **(django_request.scope if threadless else asgi_scope_of(django_request)),  # type: ignore[attr-defined]
            ACTOR_SCOPE_KEY: actor,
            AGENT_SCOPE_KEY: agent,
            BASE_URL_SCOPE_KEY: _base_url(request),
        }
        if not threadless:
            # WSGI or the test client: no connection to hand over; answered whole.
            return serve_buffered(asgi_app, scope=scope, body=body)
        return AsgiHandoff(asgi_app, scope=scope, body=body)


class A2aWorkspaceRpcView(_RpcView):
    """The workspace's A2A JSON-RPC endpoint: `params.tenant` names the agent (its slug)."""

    @extend_schema(
        operation_id="a2a_workspace_rpc",
        request=_RPC_REQUEST,
        responses=_RPC_RESPONSES,
        tags=TAGS,
    )
    def post(self, request: Request) -> HttpResponseBase:
        return self._handoff(request, None)


class A2aAgentRpcView(_RpcView):
    """One agent's A2A JSON-RPC endpoint (404 `agent_not_found` for an agent the
    credential may not use)."""

    @extend_schema(
        operation_id="a2a_agent_rpc",
        request=_RPC_REQUEST,
        responses=_RPC_RESPONSES,
        tags=TAGS,
    )
    def post(self, request: Request, slug: str) -> HttpResponseBase:
        agent = agent_by_id_or_slug(actor=get_actor(request), ref=slug)
        return self._handoff(request, agent)
