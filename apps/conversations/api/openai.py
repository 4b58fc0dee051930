"""The OpenAI-compatible surface: `POST /chat/completions` (model = an agent's id or
slug), `GET /models` and `GET /models/{model}` (the agents the credential may use), in
OpenAI's own shapes (not the envelope), so the official SDKs are clients. Each completion
request is a new conversation (source "openai") holding the request's earlier messages as
history; its run goes through the run service like every other, streamed or awaited on the
event loop. No title or suggestions are generated for it (no model call nobody asked for).
"""

from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import HttpResponseBase, JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request

from apps.agents.selectors import agent_by_id_or_slug, agents_usable_by
from apps.conversations.api.views import EventStreamRenderer, sse_response
from apps.conversations.choices import ConversationSource, RunStatus
from apps.conversations.models import Run
from apps.conversations.selectors import run_result
from apps.conversations.services import (
    conversation_create,
    conversation_history_import,
    message_send,
)
from apps.conversations.streaming import StreamItem, run_events
from apps.core.api.asyncview import AsyncApiView, DeferredResponse
from apps.core.api.base import ApiView
from apps.core.api.renderers import EnvelopeJSONRenderer
from apps.core.db import db_sync_to_async
from apps.core.events import AnswerDelta, Done, Envelope
from apps.core.exceptions import ValidationFailed
from apps.users.actors import get_actor

TAGS = ["openai-compatible"]


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.RegexField(
        r"^(system|developer|user|assistant|tool)$",
        help_text="system, developer, user, assistant or tool.",
    )
    content = serializers.JSONField(allow_null=True, required=False)
    name = serializers.CharField(required=False)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)
    tool_call_id = serializers.CharField(required=False)


class ChatCompletionRequestSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="An agent's id or slug.")
    messages = ChatMessageSerializer(many=True)
    stream = serializers.BooleanField(default=False)
    stream_options = serializers.DictField(required=False)
    user = serializers.CharField(required=False)


def _completion_id(run: Run) -> str:
    return f"chatcmpl-{run.id.hex}"


def _frame(body: dict[str, Any]) -> bytes:
    # UTF-8 as is (no \\uXXXX escapes), compact.
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _chunk(run: Run, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _frame(
        {
            "id": _completion_id(run),
            "object": "chat.completion.chunk",
            "created": int(run.created_at.timestamp()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


async def _openai_stream(
    events: AsyncIterator[StreamItem], run: Run, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    yield _chunk(run, model, {"role": "assistant", "content": ""})
    async for item in events:
        if not isinstance(item, Envelope):
            yield item.to_sse()  # the heartbeat comment
            continue
        event = item.event
        if isinstance(event, AnswerDelta):
            yield _chunk(run, model, {"content": event.delta})
        elif isinstance(event, Done):
            status = event.status
            if status != RunStatus.COMPLETED:
                yield _frame(
                    {"error": {"message": f"The run ended {status}.", "type": f"run_{status}"}}
                )
            else:
                yield _chunk(run, model, {}, "stop")
            if include_usage:
                yield _frame(
                    {
                        "id": _completion_id(run),
                        "object": "chat.completion.chunk",
                        "created": int(run.created_at.timestamp()),
                        "model": model,
                        "choices": [],
                        "usage": _usage(event.usage.input_tokens, event.usage.output_tokens),
                    }
                )
    yield b"data: [DONE]\n\n"


async def _completion(run: Run, model: str) -> HttpResponseBase:
    """The whole answer once the run ended (awaited on the event loop)."""
    async for _ in run_events(run):
        pass
    run, text = await db_sync_to_async(run_result)(run_id=run.id)
    if run.status != RunStatus.COMPLETED:
        return JsonResponse(
            {
                "error": {
                    "message": run.error_message or f"The run ended {run.status}.",
                    "type": "run_failed",
                    "code": run.error_code or run.status,
                }
            },
            status=502 if run.status == RunStatus.FAILED else 409,
        )
    return JsonResponse(
        {
            "id": _completion_id(run),
            "object": "chat.completion",
            "created": int(run.created_at.timestamp()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(run.input_tokens, run.output_tokens),
        },
        json_dumps_params={"ensure_ascii": False},
    )


class ChatCompletionsView(AsyncApiView):
    scope_area = "conversations"
    renderer_classes = [EnvelopeJSONRenderer, EventStreamRenderer]

    @extend_schema(
        operation_id="openai_chat_completions",
        request=ChatCompletionRequestSerializer,
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
        description="OpenAI Chat Completions with an agent as the model (streamed or not).",
    )
    def post(self, request: Request) -> DeferredResponse | StreamingHttpResponse:
        actor = get_actor(request)
        s = ChatCompletionRequestSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        agent = agent_by_id_or_slug(actor=actor, ref=data["model"])
        messages = [m for m in data["messages"] if m["role"] not in ("system", "developer")]
        if not messages or messages[-1]["role"] != "user":
            raise ValidationFailed("The last message must be a user message.", field="messages")
        conv = conversation_create(actor=actor, agent=agent, source=ConversationSource.OPENAI)
        conversation_history_import(conversation=conv, messages=messages[:-1])
        run = message_send(
            actor=actor, conversation=conv, content=messages[-1].get("content") or "", stream=True
        )
        model = data["model"]
        if data["stream"]:
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            return sse_response(_openai_stream(run_events(run), run, model, include_usage))
        return DeferredResponse(lambda: _completion(run, model))


def _model(agent: Any) -> dict[str, Any]:
    return {
        "id": agent.slug,
        "object": "model",
        "created": int(agent.created_at.timestamp()),
        "owned_by": str(agent.workspace_id),
        "agent_id": str(agent.id),
        "name": agent.name,
    }


_OPENAI_MODEL = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The agent's slug."},
        "object": {"type": "string", "enum": ["model"]},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "agent_id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
    },
    "required": ["id", "object", "created", "owned_by", "agent_id", "name"],
}
# OpenAI's shape, not the envelope: the `data` property keeps the schema hook from
# wrapping it, as the view does not wrap it either.
_OPENAI_MODEL_LIST = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["list"]},
        "data": {"type": "array", "items": _OPENAI_MODEL},
    },
    "required": ["object", "data"],
}


class ModelListView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="openai_models_list",
        responses={200: _OPENAI_MODEL_LIST},
        tags=TAGS,
        description="The agents this credential may use, as OpenAI models (id = slug).",
    )
    def get(self, request: Request) -> JsonResponse:
        agents = agents_usable_by(actor=get_actor(request)).order_by("slug")
        return JsonResponse({"object": "list", "data": [_model(a) for a in agents]})


class ModelDetailView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="openai_models_retrieve",
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
        description="One agent this credential may use, as an OpenAI model (the SDK's "
        "`models.retrieve`); `model` is its slug or id. 404 `agent_not_found` otherwise.",
    )
    def get(self, request: Request, model: str) -> JsonResponse:
        agent = agent_by_id_or_slug(actor=get_actor(request), ref=model)
        return JsonResponse(_model(agent))
