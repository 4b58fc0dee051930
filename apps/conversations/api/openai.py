"""The OpenAI-compatible surface: `POST /chat/completions` (model = an agent's id or
slug) and `GET /models` (the agents the credential may use), in OpenAI's own shapes
(not the envelope), so the official SDKs are clients. Each completion request is a new
conversation (source "openai") holding the request's earlier messages as history."""

import json
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from django.http import JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request

from apps.agents.selectors import agent_by_id_or_slug, agents_usable_by
from apps.conversations import runner
from apps.conversations.api.views import sse_response
from apps.conversations.choices import ConversationSource, RunStatus
from apps.conversations.models import Message, Run
from apps.conversations.services import conversation_create, message_send
from apps.conversations.streaming import release_request_thread, run_events
from apps.core.api.base import ApiView
from apps.core.events import Event, EventType
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


def _chunk(run: Run, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": _completion_id(run),
        "object": "chat.completion.chunk",
        "created": int(run.created_at.timestamp()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


async def _openai_stream(
    events: AsyncIterator[Event | object], run: Run, model: str, include_usage: bool
) -> AsyncIterator[bytes]:
    yield _chunk(run, model, {"role": "assistant", "content": ""})
    release_request_thread()
    async for item in events:
        if not isinstance(item, Event):
            yield b": keep-alive\n\n"
            continue
        if item.type == EventType.ANSWER_DELTA:
            yield _chunk(run, model, {"content": item.data.get("delta", "")})
        elif item.type == EventType.DONE:
            status = item.data.get("status")
            if status != RunStatus.COMPLETED:
                err = {
                    "error": {"message": f"The run ended {status}.", "type": "run_" + str(status)}
                }
                yield f"data: {json.dumps(err)}\n\n".encode()
            else:
                yield _chunk(run, model, {}, "stop")
            if include_usage:
                usage = item.data.get("usage", {})
                body = {
                    "id": _completion_id(run),
                    "object": "chat.completion.chunk",
                    "created": int(run.created_at.timestamp()),
                    "model": model,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": usage.get("input_tokens", 0),
                        "completion_tokens": usage.get("output_tokens", 0),
                        "total_tokens": usage.get("input_tokens", 0)
                        + usage.get("output_tokens", 0),
                    },
                }
                yield f"data: {json.dumps(body)}\n\n".encode()
    yield b"data: [DONE]\n\n"


class ChatCompletionsView(ApiView):
    scope_area = "conversations"

    @extend_schema(
        operation_id="openai_chat_completions",
        request=ChatCompletionRequestSerializer,
        responses={200: OpenApiTypes.OBJECT},
        tags=TAGS,
        description="OpenAI Chat Completions with an agent as the model (streamed or not).",
    )
    def post(self, request: Request) -> JsonResponse | StreamingHttpResponse:
        actor = get_actor(request)
        s = ChatCompletionRequestSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        data = s.validated_data
        agent = agent_by_id_or_slug(actor=actor, ref=data["model"])
        messages = [m for m in data["messages"] if m["role"] not in ("system", "developer")]
        if not messages or messages[-1]["role"] != "user":
            raise ValidationFailed("The last message must be a user message.", field="messages")
        conv = conversation_create(actor=actor, agent=agent, source=ConversationSource.OPENAI)
        for m in messages[:-1]:
            runner.message_create_sync(conversation_id=conv.id, run_id=None, message=dict(m))
        run = message_send(
            actor=actor,
            conversation=conv,
            content=messages[-1].get("content") or "",
            dispatch=False,
            stream=data["stream"],
        )
        model = data["model"]
        if data["stream"]:
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            return sse_response(_openai_stream(run_events(run), run, model, include_usage))
        async_to_sync(runner.drive_conversation)(conv.id)
        run.refresh_from_db()
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
        answer = (
            Message.objects.filter(id=run.answer_message_id).first()
            if run.answer_message_id
            else None
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
                        "message": {"role": "assistant", "content": answer.text if answer else ""},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": run.input_tokens,
                    "completion_tokens": run.output_tokens,
                    "total_tokens": run.input_tokens + run.output_tokens,
                },
            }
        )


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
        return JsonResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": a.slug,
                        "object": "model",
                        "created": int(a.created_at.timestamp()),
                        "owned_by": str(a.workspace_id),
                        "agent_id": str(a.id),
                        "name": a.name,
                    }
                    for a in agents
                ],
            }
        )
