"""The AG-UI endpoint: `POST /agents/{agent}/ag-ui` runs an agent from an AG-UI
`RunAgentInput` and streams AG-UI events over SSE (apps/conversations/agui.py maps them;
docs/protocols.md describes the endpoint). Authentication, scopes, rate limits and 404s
are the REST API's; errors before the stream starts are the error envelope."""

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.request import Request

from apps.agents.selectors import agent_by_id_or_slug
from apps.conversations.agui import agui_input_parse, agui_run_start, agui_stream
from apps.conversations.api.views import EventStreamRenderer, sse_response
from apps.core.api.asyncview import AsyncApiView
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.users.actors import get_actor

TAGS = ["ag-ui"]

# The protocol's RunAgentInput (its own JSON Schema is the reference: docs.ag-ui.com).
RUN_AGENT_INPUT = {
    "type": "object",
    "description": "An AG-UI RunAgentInput (protocol 1.0), camelCase as on the wire.",
    "properties": {
        "threadId": {
            "type": "string",
            "description": "The conversation: its id (a UUID), or any string naming a "
            "thread of this user (a new one starts a new conversation).",
        },
        "runId": {
            "type": "string",
            "description": "The run; a fresh UUID becomes the run's id.",
        },
        "messages": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "The conversation so far; the last message is the user's new "
            "message, or the tool messages answering the paused run's frontend tool calls.",
        },
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "parameters": {"type": "object", "additionalProperties": True},
                },
                "required": ["name", "description"],
            },
            "description": "Frontend tools offered to the model for this run.",
        },
        "context": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"description": {"type": "string"}, "value": {"type": "string"}},
                "required": ["description", "value"],
            },
        },
        "state": {"description": "The application's state (any JSON)."},
        "resume": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "Answers to the interrupts (tool approvals) of the paused run.",
        },
        "forwardedProps": {"description": "Ignored."},
        "protocolVersion": {"type": "string"},
        "parentRunId": {"type": "string"},
    },
    "required": ["threadId", "runId", "messages"],
}

AGUI_RESPONSE = OpenApiResponse(
    response=OpenApiTypes.STR,
    description='`text/event-stream` of AG-UI events (`data: {"type": "RUN_STARTED", '
    "...}`), from RUN_STARTED to RUN_FINISHED or RUN_ERROR.",
)


class AgentAguiView(AsyncApiView):
    scope_area = "conversations"
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="agents_ag_ui_run",
        request={"application/json": RUN_AGENT_INPUT},
        responses={200: AGUI_RESPONSE},
        tags=TAGS,
        description="Run the agent (id or slug) for an AG-UI client: the body is the "
        "protocol's RunAgentInput, the answer its event stream (docs/protocols.md).",
        examples=[
            OpenApiExample(
                "A new thread",
                request_only=True,
                value={
                    "threadId": "0b9c8a55-33c2-4b8f-9c39-0d0f8e7a1d20",
                    "runId": "6f1e2b1a-8d3c-4a5e-9f00-1c2d3e4f5a6b",
                    "messages": [{"id": "m1", "role": "user", "content": "Hello"}],
                    "tools": [],
                    "context": [],
                },
            )
        ],
    )
    def post(self, request: Request, agent: str) -> StreamingHttpResponse:
        actor = get_actor(request)
        target = agent_by_id_or_slug(actor=actor, ref=agent)
        data = request.data
        run_input = agui_input_parse(data)
        start = agui_run_start(
            actor=actor,
            agent=target,
            run_input=run_input,
            # An absent or empty state (what clients send by default) is no state.
            has_state=isinstance(data, dict) and data.get("state") not in (None, {}, []),
        )
        return sse_response(agui_stream(start))
