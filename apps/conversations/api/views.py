import uuid
from typing import Any

from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.agents.selectors import agent_by_id_or_slug
from apps.conversations.api.serializers import (
    ConversationCreateSerializer,
    ConversationSerializer,
    ConversationUpdateSerializer,
    DecisionsSerializer,
    EditMessageSerializer,
    FeedbackSerializer,
    FeedbackWriteSerializer,
    MessageSerializer,
    RunSerializer,
    SendMessageSerializer,
    SharedConversationSerializer,
    ShareSerializer,
    StreamTicketSerializer,
)
from apps.conversations.authentication import StreamTicketAuthentication
from apps.conversations.exceptions import NothingToResume
from apps.conversations.models import Conversation, Run
from apps.conversations.selectors import (
    access_conversation,
    access_message,
    access_run,
    access_share,
    conversation_list,
    conversation_messages,
    message_page,
    queue_list,
    run_list,
    shared_conversation,
)
from apps.conversations.services import (
    conversation_create,
    conversation_delete,
    conversation_edit_last_user_message,
    conversation_regenerate,
    conversation_rename,
    feedback_set,
    interrupt_stale_runs_of,
    message_send,
    queue_delete,
    queue_promote,
    run_cancel,
    run_decide,
    share_create,
    share_revoke,
    stream_ticket_create,
)
from apps.conversations.streaming import events_after, parse_cursor, run_events, sse_body
from apps.core.api.asyncview import AsyncApiView
from apps.core.api.base import ApiView
from apps.core.api.envelope import Enveloped
from apps.core.api.pagination import parse_limit
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.core.exceptions import ValidationFailed
from apps.users.actors import get_actor
from apps.users.choices import Role

TAGS = ["conversations"]
RUN_TAGS = ["runs"]
STREAM_TAGS = ["streams"]


class EventStreamRenderer(EnvelopeJSONRenderer):
    """Lets a stream endpoint accept `Accept: text/event-stream` (errors stay JSON)."""

    media_type = "text/event-stream"
    format = "sse"


def sse_response(body: Any) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an integer.", field=name) from exc


SSE_RESPONSE = OpenApiResponse(
    response=OpenApiTypes.STR,
    description="`text/event-stream` of events (docs/events.md); the SSE `id` is the cursor.",
)
CURSOR_PARAMS = [
    OpenApiParameter(
        "cursor",
        int,
        description="Resume after this cursor (-1: from the start). `Last-Event-ID` wins.",
    ),
    OpenApiParameter("ticket", str, description="A stream ticket (for EventSource)."),
    OpenApiParameter("Last-Event-ID", str, location=OpenApiParameter.HEADER),
]


class ConversationListView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversations_list",
        parameters=[
            OpenApiParameter("search", str, description="In titles and message text."),
            OpenApiParameter("agent_id", uuid.UUID),
        ],
        responses=ConversationSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        agent_id = request.query_params.get("agent_id") or None
        try:
            agent_uuid = uuid.UUID(agent_id) if agent_id else None
        except ValueError as exc:
            raise ValidationFailed("agent_id is not a UUID.", field="agent_id") from exc
        qs = conversation_list(
            actor=get_actor(request),
            search=request.query_params.get("search", "").strip(),
            agent_id=agent_uuid,
        )
        return self.paginate(request, qs, lambda p: ConversationSerializer(p, many=True).data)

    @extend_schema(
        operation_id="conversations_create",
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        actor = get_actor(request)
        s = ConversationCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        agent = agent_by_id_or_slug(actor=actor, ref=s.validated_data["agent_id"])
        conv = conversation_create(actor=actor, agent=agent, title=s.validated_data["title"])
        return Response(ConversationSerializer(conv).data, status=201)


class ConversationDetailView(ApiView):
    scope_area = "conversations"

    @extend_schema(operation_id="conversations_get", responses=ConversationSerializer, tags=TAGS)
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        return Response(ConversationSerializer(conv).data)

    @extend_schema(
        operation_id="conversations_update",
        request=ConversationUpdateSerializer,
        responses=ConversationSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        s = ConversationUpdateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        conv = conversation_rename(conversation=conv, title=s.validated_data["title"])
        return Response(ConversationSerializer(conv).data)

    @extend_schema(operation_id="conversations_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        conversation_delete(conversation=conv)
        return Response(status=204)


def _markdown(conv: Conversation) -> str:
    lines = [f"# {conv.title or 'Conversation'}", ""]
    for m in conversation_messages(conversation=conv):
        if m.role not in ("user", "assistant") or (m.role == "assistant" and not m.text):
            continue
        lines += [f"**{'You' if m.role == 'user' else conv.agent.name}**", "", m.text, ""]
        if m.attachments:  # files attached to the message (docs/files.md)
            names = ", ".join(
                f"{a.get('name', '')} ({a.get('content_type', '')})" for a in m.attachments
            )
            lines += [f"Attachments: {names}", ""]
    return "\n".join(lines)


class ConversationExportView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversations_export",
        parameters=[OpenApiParameter("as", str, enum=["json", "markdown"])],
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response | HttpResponse:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        fmt = request.query_params.get("as", "json")
        if fmt == "markdown":
            response = HttpResponse(_markdown(conv), content_type="text/markdown; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="conversation-{conv.id}.md"'
            return response
        if fmt != "json":
            raise ValidationFailed("`as` is json or markdown.", field="as")
        return Response(
            {
                "conversation": ConversationSerializer(conv).data,
                "messages": MessageSerializer(
                    conversation_messages(conversation=conv), many=True
                ).data,
            }
        )


# Messages page by `seq` (`before`/`after`), not by cursor: the meta says so. Declared
# with `data` so the schema hook does not wrap it again.
MESSAGE_PAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
        "meta": {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "has_more": {"type": "boolean"},
                "next_before": {
                    "type": ["integer", "null"],
                    "description": "Pass as `before` for the older page (when paging back).",
                },
                "next_after": {
                    "type": ["integer", "null"],
                    "description": "Pass as `after` for the newer page (when paging forward).",
                },
            },
            "required": ["request_id", "has_more", "next_before", "next_after"],
        },
    },
    "required": ["data", "meta"],
}


class MessageListView(AsyncApiView):
    scope_area = "conversations"
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="conversation_messages_list",
        parameters=[
            OpenApiParameter("before", int, description="Messages with seq below this."),
            OpenApiParameter("after", int, description="Messages with seq above this."),
            OpenApiParameter("limit", int),
        ],
        responses={200: MESSAGE_PAGE_SCHEMA},
        tags=TAGS,
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        limit = parse_limit(request, 50)
        before, after = _int_param(request, "before"), _int_param(request, "after")
        rows, more = message_page(conversation=conv, before=before, after=after, limit=limit)
        meta = {
            "has_more": more,
            "next_before": rows[0].seq if rows and after is None and more else None,
            "next_after": rows[-1].seq if rows and after is not None and more else None,
        }
        return Response(Enveloped({"data": MessageSerializer(rows, many=True).data, "meta": meta}))

    @extend_schema(
        operation_id="conversation_messages_send",
        request=SendMessageSerializer,
        responses={202: RunSerializer, 200: SSE_RESPONSE},
        tags=TAGS,
    )
    def post(
        self, request: Request, conversation_id: uuid.UUID
    ) -> Response | StreamingHttpResponse:
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        s = SendMessageSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        stream = data["stream"] and not data["background"]
        run = message_send(
            actor=actor,
            conversation=conv,
            content=data["content"],
            attachments=data["attachments"],
            running_run_behavior=data["running_run_behavior"],
            background=data["background"],
            stream=stream,
        )
        if stream:
            response = sse_response(sse_body(run_events(run)))
            response["X-Run-ID"] = str(run.id)
            return response
        return Response(RunSerializer(run).data, status=202)


class ConversationQueueView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversation_queue_list", responses=RunSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        runs = list(queue_list(conversation=conv))
        # One complete page: the renderer gives it the list meta (has_more false).
        return Response(RunSerializer(runs, many=True).data)


class ConversationRunsView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversation_runs_list", responses=RunSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        return self.paginate(
            request, run_list(conversation=conv), lambda p: RunSerializer(p, many=True).data
        )


class EditLastUserMessageView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversations_edit_last_user_message",
        request=EditMessageSerializer,
        responses={202: RunSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        s = EditMessageSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        run = conversation_edit_last_user_message(
            actor=actor, conversation=conv, content=s.validated_data["content"]
        )
        return Response(RunSerializer(run).data, status=202)


class RegenerateView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversations_regenerate",
        request=None,
        responses={202: RunSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        run = conversation_regenerate(actor=actor, conversation=conv)
        return Response(RunSerializer(run).data, status=202)


class ShareListView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversation_shares_list", responses=ShareSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        return self.paginate(
            request, conv.shares.all(), lambda p: ShareSerializer(p, many=True).data
        )

    @extend_schema(
        operation_id="conversation_shares_create",
        request=None,
        responses={201: ShareSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        return Response(
            ShareSerializer(share_create(actor=actor, conversation=conv)).data, status=201
        )


class ShareDetailView(ApiView):
    scope_area = "conversations"

    @extend_schema(operation_id="conversation_shares_revoke", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, conversation_id: uuid.UUID, share_id: uuid.UUID) -> Response:
        conv = access_conversation(actor=get_actor(request), conversation_id=conversation_id)
        share_revoke(share=access_share(conversation=conv, share_id=share_id))
        return Response(status=204)


class SharedConversationView(ApiView):
    """Public: no credential needed, the token is the capability."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="shared_conversations_get",
        responses={
            200: SharedConversationSerializer,
            302: OpenApiResponse(
                description="A browser (Accept preferring text/html) is sent to the "
                "read-only page of the web console."
            ),
        },
        tags=TAGS,
        auth=[],
    )
    def get(self, request: Request, token: str) -> Response | HttpResponse:
        # Content negotiation: the link people share opens as a page in a browser; API
        # clients (Accept: application/json or */*) keep getting the JSON.
        if request._request.get_preferred_type(["application/json", "text/html"]) == "text/html":
            return HttpResponseRedirect(reverse("console:shared", kwargs={"token": token}))
        conv = shared_conversation(token=token)
        messages = [
            m
            for m in conversation_messages(conversation=conv)
            if m.role == "user" or (m.role == "assistant" and m.text)
        ]
        data = {"title": conv.title, "agent_name": conv.agent.name, "messages": messages}
        return Response(SharedConversationSerializer(data).data)


class StreamTicketView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="conversation_stream_tickets_create",
        request=None,
        responses={201: StreamTicketSerializer},
        tags=STREAM_TAGS,
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        ticket, token = stream_ticket_create(actor=actor, conversation=conv)
        return Response(
            {
                "ticket": token,
                "expires_at": ticket.expires_at,
                "stream_url": f"/api/v1/conversations/{conv.id}/stream?ticket={token}",
            },
            status=201,
        )


def _stream_auth() -> list[Any]:
    return [StreamTicketAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]


class ConversationStreamView(AsyncApiView):
    scope_area = "conversations"
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    def get_authenticators(self) -> list[Any]:
        return [cls() for cls in _stream_auth()]

    @extend_schema(
        operation_id="conversation_stream",
        parameters=CURSOR_PARAMS,
        responses={200: SSE_RESPONSE},
        tags=STREAM_TAGS,
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> StreamingHttpResponse:
        """Every event of the conversation's runs after the cursor, then live ones (the
        stream stays open; heartbeats every 15 s)."""
        actor = get_actor(request)
        conv = access_conversation(actor=actor, conversation_id=conversation_id)
        StreamTicketAuthentication.check_conversation(request, conv.id)
        interrupt_stale_runs_of(conversation=conv)
        cursor = parse_cursor(
            request.headers.get("Last-Event-ID"), request.query_params.get("cursor")
        )
        # A resume point in a conversation that never ran is a client's mistake; -1 (from
        # the start) is how a page opens the stream of a conversation before its first run.
        if (
            cursor is not None
            and cursor >= 0
            and not Run.objects.filter(conversation=conv).exists()
        ):
            raise NothingToResume()
        events = events_after(conversation_id=conv.id, after=cursor)
        return sse_response(sse_body(events))


class RunStreamView(AsyncApiView):
    scope_area = "conversations"
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    def get_authenticators(self) -> list[Any]:
        return [cls() for cls in _stream_auth()]

    @extend_schema(
        operation_id="runs_stream",
        parameters=CURSOR_PARAMS,
        responses={200: SSE_RESPONSE},
        tags=STREAM_TAGS,
    )
    def get(self, request: Request, run_id: uuid.UUID) -> StreamingHttpResponse:
        """The run's events after the cursor (from its start by default), live until its
        `end` event."""
        run = access_run(actor=get_actor(request), run_id=run_id)
        StreamTicketAuthentication.check_conversation(request, run.conversation_id)
        if run.status == "running":
            interrupt_stale_runs_of(conversation=run.conversation)
        cursor = parse_cursor(
            request.headers.get("Last-Event-ID"), request.query_params.get("cursor")
        )
        events = events_after(
            conversation_id=run.conversation_id, after=cursor, run_id=run.id, stop_at_end=True
        )
        return sse_response(sse_body(events))


class RunDetailView(ApiView):
    scope_area = "conversations"

    @extend_schema(operation_id="runs_get", responses=RunSerializer, tags=RUN_TAGS)
    def get(self, request: Request, run_id: uuid.UUID) -> Response:
        return Response(RunSerializer(access_run(actor=get_actor(request), run_id=run_id)).data)

    @extend_schema(
        operation_id="runs_delete_queued",
        responses={204: None},
        tags=RUN_TAGS,
        description="Delete a queued message (its run never starts).",
    )
    def delete(self, request: Request, run_id: uuid.UUID) -> Response:
        queue_delete(run=access_run(actor=get_actor(request), run_id=run_id))
        return Response(status=204)


class RunCancelView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="runs_cancel", request=None, responses={202: RunSerializer}, tags=RUN_TAGS
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        run = run_cancel(actor=actor, run=access_run(actor=actor, run_id=run_id))
        return Response(RunSerializer(run).data, status=202)


class RunPromoteView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="runs_promote", request=None, responses=RunSerializer, tags=RUN_TAGS
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        run = queue_promote(run=access_run(actor=get_actor(request), run_id=run_id))
        return Response(RunSerializer(run).data)


class RunApprovalsView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="runs_approvals",
        request=DecisionsSerializer,
        responses={202: RunSerializer},
        tags=RUN_TAGS,
    )
    def post(self, request: Request, run_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        run = access_run(actor=actor, run_id=run_id)
        s = DecisionsSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        decisions = {d["tool_call_id"]: d["approved"] for d in s.validated_data["decisions"]}
        run = run_decide(actor=actor, run=run, decisions=decisions)
        return Response(RunSerializer(run).data, status=202)


class MessageFeedbackView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="messages_feedback_set",
        request=FeedbackWriteSerializer,
        responses=FeedbackSerializer,
        tags=TAGS,
    )
    def put(self, request: Request, message_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        actor.require_role(Role.VIEWER)
        message = access_message(actor=actor, message_id=message_id)
        s = FeedbackWriteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        fb = feedback_set(actor=actor, message=message, **s.validated_data)
        return Response(FeedbackSerializer(fb).data)
