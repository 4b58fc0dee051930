"""A scripted model server: OpenAI- and Anthropic-shaped HTTP endpoints with replies a test
(or a demo, or a benchmark) decides in advance. Real HTTP on a real socket, no internet.

Endpoints
    POST /v1/chat/completions   OpenAI chat, streamed (SSE) or not; text, reasoning
                                (`reasoning_content` deltas), tool calls, usage
    POST /v1/messages           Anthropic Messages, streamed or not; text, thinking, tool_use
    POST /v1/embeddings         deterministic vectors (hashed bag of words, L2-normalised)
    POST /v1/rerank             deterministic relevance (`rerank_score`: the share of the
                                query's distinct words a document holds), Cohere/Jina shape
    GET  /v1/models             the model list (OpenAI shape; Anthropic shape when the
                                request carries `anthropic-version`)
    POST /_script/push          {"replies": [...]} queue replies (other processes: benchmarks)
    POST /_script/reset         clear queues and records

Scripting (in-process): `server.push(*replies)` queues chat replies, answered in order by the
next chat requests (OpenAI or Anthropic); each reply is a `str` (the answer text), a `Reply`,
or a dict of `Reply` fields. With nothing queued a chat request gets `default_text`.
`server.push_embeddings(*replies)` queues failures for the embeddings endpoint (a `Reply`
with `status`, or `drop_after=0`); otherwise it always answers. `server.push_rerank(...)`
does the same for the rerank endpoint (a `Reply` with `include_usage=False` answers without
a usage block).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TEXT = "This is a scripted answer."
DEFAULT_DIMENSIONS = 64
DEFAULT_MODELS = ("scripted-chat", "scripted-embed")
_WORD_RE = re.compile(r"\S+\s*|\s+")


@dataclass
class ToolCall:
    """A tool call the scripted model makes. `arguments`: a dict (sent as JSON) or raw text."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str = ""

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Reply:
    """One scripted answer (or failure).

    - `text`, `reasoning`, `tool_calls`: what the model says (streamed word by word;
      tool-call arguments in two pieces);
    - `usage`: (input_tokens, output_tokens) reported to the client; None: computed from word
      counts; `include_usage=False`: report none (the client must count);
    - `finish_reason`: default "tool_calls" when there are tool calls, else "stop";
    - failures: `status` (e.g. 429, 500, 401, 400) answers that error instead, with
      `retry_after` seconds in a Retry-After header; `drop_after=N` closes the connection
      after N streamed chunks (0: before any byte of the response);
    - pace: `first_byte_delay` seconds before the response starts, `token_delay` between
      chunks (a client that disconnects meanwhile is noticed: see `disconnects`).
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: tuple[int, int] | None = None
    include_usage: bool = True
    finish_reason: str | None = None
    status: int = 200
    error_message: str = ""
    retry_after: float | None = None
    drop_after: int | None = None
    first_byte_delay: float = 0.0
    token_delay: float | None = None

    @classmethod
    def coerce(cls, value: Reply | str | dict[str, Any]) -> Reply:
        if isinstance(value, Reply):
            return value
        if isinstance(value, str):
            return cls(text=value)
        data = dict(value)
        calls = [
            c if isinstance(c, ToolCall) else ToolCall(**c) for c in data.pop("tool_calls", [])
        ]
        if data.get("usage") is not None:
            data["usage"] = tuple(data["usage"])
        return cls(tool_calls=calls, **data)


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The scripted embedding: a hashed bag of lower-cased words, L2-normalised. The same
    text always gives the same vector; texts sharing words are closer."""
    vector = [0.0] * dimensions
    words = re.findall(r"\w+", text.lower()) or [""]
    for word in words:
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % dimensions
        vector[index] += 1.0 if digest[4] % 2 == 0 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def rerank_score(query: str, document: str) -> float:
    """The scripted relevance: the share of the query's distinct lower-cased words that
    the document holds (1.0: all of them; 0.0: none, or an empty query)."""
    wanted = set(re.findall(r"\w+", query.lower()))
    if not wanted:
        return 0.0
    present = set(re.findall(r"\w+", document.lower()))
    return len(wanted & present) / len(wanted)


def count_words(text: str) -> int:
    return len(re.findall(r"\S+", text))


class ScriptedLLM:
    """The server and its script. Thread-safe; start() serves on a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.default_text = DEFAULT_TEXT
        self.embedding_dimensions = DEFAULT_DIMENSIONS
        self.token_delay = 0.0
        # Seconds before an unscripted chat answer starts (a slow upstream's first token).
        self.default_first_byte_delay = 0.0
        self.models: list[str] = list(DEFAULT_MODELS)
        self._lock = threading.Lock()
        self._chat: deque[Reply] = deque()
        self._embed: deque[Reply] = deque()
        self._rerank: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.request_log: list[dict[str, Any]] = []
        self.disconnects = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._defaults: tuple[str, int, float, list[str]] = (
            DEFAULT_TEXT,
            DEFAULT_DIMENSIONS,
            0.0,
            list(DEFAULT_MODELS),
        )

    # --- scripting ---

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def push(self, *replies: Reply | str | dict[str, Any]) -> None:
        with self._lock:
            self._chat.extend(Reply.coerce(r) for r in replies)

    def push_embeddings(self, *replies: Reply | dict[str, Any]) -> None:
        with self._lock:
            self._embed.extend(Reply.coerce(r) for r in replies)

    def push_rerank(self, *replies: Reply | dict[str, Any]) -> None:
        with self._lock:
            self._rerank.extend(Reply.coerce(r) for r in replies)

    def remember_defaults(self) -> None:
        """Make the current default text, dimensions, pace and models survive `reset()`."""
        self._defaults = (
            self.default_text,
            self.embedding_dimensions,
            self.token_delay,
            list(self.models),
        )

    def reset(self) -> None:
        with self._lock:
            self._chat.clear()
            self._embed.clear()
            self._rerank.clear()
            self.requests.clear()
            self.request_log.clear()
            self.disconnects = 0
            text, dimensions, delay, models = self._defaults
            self.default_text = text
            self.embedding_dimensions = dimensions
            self.token_delay = delay
            self.models = list(models)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._chat)

    def _next(self, queue: deque[Reply]) -> Reply | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _record(self, path: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        entry = {"path": path, "headers": headers, "body": body, "disconnected": False}
        with self._lock:
            self.requests.append(body)
            self.request_log.append(entry)
        return entry

    def _disconnected(self, entry: dict[str, Any] | None) -> None:
        with self._lock:
            if entry is not None:
                entry["disconnected"] = True
            self.disconnects += 1

    # --- lifecycle ---

    def start(self) -> ScriptedLLM:
        handler = type("Handler", (_Handler,), {"llm": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scripted-llm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        handler = type("Handler", (_Handler,), {"llm": self})
        self._server = _Server((self.host, self.port), handler)
        self.port = self._server.server_address[1]
        self._server.serve_forever()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many concurrent streams (benchmarks) connect at once


class _Dropped(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    llm: ScriptedLLM
    protocol_version = "HTTP/1.1"
    _entry: dict[str, Any] | None = None

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("scripted-llm: " + format, *args)

    # --- plumbing ---

    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {"_raw": raw.decode("utf-8", "replace")}

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.llm._disconnected(self._entry)
            raise _Dropped() from exc

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.llm._disconnected(self._entry)
            raise _Dropped() from exc

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped()

    def _failure(self, reply: Reply, anthropic: bool) -> None:
        status = reply.status
        message = reply.error_message or {
            400: "Bad request.",
            401: "Incorrect API key provided.",
            404: "The model does not exist.",
            429: "Rate limit reached.",
        }.get(status, "The server had an error.")
        headers = {}
        if reply.retry_after is not None:
            headers["Retry-After"] = f"{reply.retry_after:g}"
        if anthropic:
            kind = {401: "authentication_error", 429: "rate_limit_error", 404: "not_found_error"}
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind.get(status, "api_error"), "message": message},
            }
        else:
            kind = {401: "invalid_api_key", 429: "rate_limit_exceeded", 404: "model_not_found"}
            payload = {
                "error": {
                    "message": message,
                    "type": "error",
                    "code": kind.get(status, "server_error"),
                }
            }
        self._json(status, payload, headers)

    def _pace(self, reply: Reply) -> None:
        delay = reply.token_delay if reply.token_delay is not None else self.llm.token_delay
        if delay:
            time.sleep(delay)

    # --- routing ---

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.llm._record(path, headers, None)
            if "anthropic-version" in headers:
                data = [
                    {
                        "id": name,
                        "type": "model",
                        "display_name": name,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                    for name in self.llm.models
                ]
                first = data[0]["id"] if data else None
                last = data[-1]["id"] if data else None
                payload = {"data": data, "has_more": False, "first_id": first, "last_id": last}
                self._json(200, payload)
            else:
                listed: list[dict[str, Any]] = [
                    {"id": name, "object": "model", "created": 1735689600, "owned_by": "scripted"}
                    for name in self.llm.models
                ]
                self._json(200, {"object": "list", "data": listed})
            return
        self._json(404, {"error": {"message": "Not found.", "type": "not_found", "code": None}})

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            if path == "/_script/push":
                self.llm.push(*body.get("replies", []))
                self._json(200, {"queued": self.llm.pending})
            elif path == "/_script/reset":
                self.llm.reset()
                self._json(200, {"ok": True})
            elif path == "/v1/chat/completions":
                self._entry = self.llm._record(path, headers, body)
                self._openai_chat(body)
            elif path == "/v1/messages":
                self._entry = self.llm._record(path, headers, body)
                self._anthropic_chat(body)
            elif path == "/v1/embeddings":
                self._entry = self.llm._record(path, headers, body)
                self._embeddings(body)
            elif path == "/v1/rerank":
                self._entry = self.llm._record(path, headers, body)
                self._rerank(body)
            else:
                self._json(404, {"error": {"message": "Not found.", "type": "not_found"}})
        except _Dropped:
            self.close_connection = True

    # --- OpenAI chat ---

    def _reply_for(self, queue: deque[Reply]) -> Reply:
        reply = self.llm._next(queue)
        if reply is not None:
            return reply
        return Reply(text=self.llm.default_text, first_byte_delay=self.llm.default_first_byte_delay)

    def _openai_chat(self, body: dict[str, Any]) -> None:
        reply = self._reply_for(self.llm._chat)
        if reply.first_byte_delay:
            time.sleep(reply.first_byte_delay)
        if reply.drop_after == 0:
            self._drop()
        if reply.status != 200:
            self._failure(reply, anthropic=False)
            return
        model = str(body.get("model", "scripted-chat"))
        prompt_tokens = _prompt_words(body.get("messages", []))
        usage = reply.usage or (prompt_tokens, count_words(reply.text + " " + reply.reasoning))
        calls = [
            (c.id or f"call_{uuid.uuid4().hex[:12]}", c.name, c.arguments_text())
            for c in reply.tool_calls
        ]
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        cid = f"chatcmpl-{uuid.uuid4().hex[:16]}"
        usage_obj = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if reply.reasoning:
                message["reasoning_content"] = reply.reasoning
            if calls:
                message["tool_calls"] = [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in calls
                ]
            payload: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
            if reply.include_usage:
                payload["usage"] = usage_obj
            self._json(200, payload)
            return

        sent = 0

        def emit(
            delta: dict[str, Any] | None,
            finish_reason: str | None = None,
            pace: bool = True,
            **extra: Any,
        ) -> None:
            nonlocal sent
            if reply.drop_after is not None and sent >= reply.drop_after:
                self._drop()
            chunk: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": (
                    []
                    if delta is None
                    else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
                ),
                **extra,
            }
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            sent += 1
            if pace and delta is not None:
                self._pace(reply)

        self._start_stream()
        emit({"role": "assistant", "content": ""}, pace=False)
        for piece in _WORD_RE.findall(reply.reasoning):
            emit({"reasoning_content": piece})
        for piece in _WORD_RE.findall(reply.text):
            emit({"content": piece})
        for index, (call_id, name, arguments) in enumerate(calls):
            half = len(arguments) // 2
            emit(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": arguments[:half]},
                        }
                    ]
                }
            )
            emit({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
        emit({}, finish, pace=False)
        options = body.get("stream_options") or {}
        if reply.include_usage and options.get("include_usage"):
            emit(None, usage=usage_obj)
        self._chunk(b"data: [DONE]\n\n")
        self._end_stream()

    # --- Anthropic messages ---

    def _anthropic_chat(self, body: dict[str, Any]) -> None:
        reply = self._reply_for(self.llm._chat)
        if reply.first_byte_delay:
            time.sleep(reply.first_byte_delay)
        if reply.drop_after == 0:
            self._drop()
        if reply.status != 200:
            self._failure(reply, anthropic=True)
            return
        model = str(body.get("model", "scripted-chat"))
        system = body.get("system") or ""
        prompt_tokens = _prompt_words(body.get("messages", [])) + count_words(
            system if isinstance(system, str) else json.dumps(system)
        )
        usage = reply.usage or (prompt_tokens, count_words(reply.text + " " + reply.reasoning))
        calls = [
            (c.id or f"toolu_{uuid.uuid4().hex[:12]}", c.name, c.arguments_text())
            for c in reply.tool_calls
        ]
        stop = reply.finish_reason or ("tool_use" if calls else "end_turn")
        mid = f"msg_{uuid.uuid4().hex[:16]}"
        blocks: list[dict[str, Any]] = []
        if reply.reasoning:
            blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig"})
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for call_id, name, arguments in calls:
            blocks.append(
                {"type": "tool_use", "id": call_id, "name": name, "input": json.loads(arguments)}
            )
        if not body.get("stream"):
            payload = {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
            }
            self._json(200, payload)
            return

        sent = 0

        def event(name: str, data: dict[str, Any], pace: bool = False) -> None:
            nonlocal sent
            if reply.drop_after is not None and sent >= reply.drop_after:
                self._drop()
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self._chunk(payload)
            sent += 1
            if pace:
                self._pace(reply)

        self._start_stream()
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": usage[0], "output_tokens": 0},
                },
            },
        )
        for index, block in enumerate(blocks):
            kind = block["type"]
            start: dict[str, Any]
            if kind == "thinking":
                start = {"type": "thinking", "thinking": "", "signature": ""}
            elif kind == "text":
                start = {"type": "text", "text": ""}
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            if kind == "thinking":
                for piece in _WORD_RE.findall(block["thinking"]):
                    delta = {"type": "thinking_delta", "thinking": piece}
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        pace=True,
                    )
                delta = {"type": "signature_delta", "signature": "sig"}
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            elif kind == "text":
                for piece in _WORD_RE.findall(block["text"]):
                    delta = {"type": "text_delta", "text": piece}
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        pace=True,
                    )
            else:
                arguments = json.dumps(block["input"])
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    delta = {"type": "input_json_delta", "partial_json": part}
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                        pace=True,
                    )
            event("content_block_stop", {"type": "content_block_stop", "index": index})
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage[1]},
            },
        )
        event("message_stop", {"type": "message_stop"})
        self._end_stream()

    # --- embeddings ---

    def _embeddings(self, body: dict[str, Any]) -> None:
        reply = self.llm._next(self.llm._embed)
        if reply is not None:
            if reply.first_byte_delay:
                time.sleep(reply.first_byte_delay)
            if reply.drop_after is not None:
                self._drop()
            if reply.status != 200:
                self._failure(reply, anthropic=False)
                return
        inputs = body.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        dims = int(body.get("dimensions") or self.llm.embedding_dimensions)
        data = [
            {"object": "embedding", "index": i, "embedding": embed_text(str(text), dims)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(count_words(str(t)) for t in inputs)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "scripted-embed"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # --- rerank ---

    def _rerank(self, body: dict[str, Any]) -> None:
        reply = self.llm._next(self.llm._rerank)
        if reply is not None:
            if reply.first_byte_delay:
                time.sleep(reply.first_byte_delay)
            if reply.drop_after is not None:
                self._drop()
            if reply.status != 200:
                self._failure(reply, anthropic=False)
                return
        query = body.get("query")
        documents = body.get("documents")
        if not isinstance(query, str) or not isinstance(documents, list):
            self._failure(
                Reply(status=400, error_message="query (string) and documents (list) needed."),
                anthropic=False,
            )
            return
        texts = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in documents]
        ranked = sorted(
            ((i, rerank_score(query, text)) for i, text in enumerate(texts)),
            key=lambda item: (-item[1], item[0]),
        )
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n > 0:
            ranked = ranked[:top_n]
        tokens = sum(count_words(query) + count_words(text) for text in texts)
        if reply is not None and reply.usage is not None:
            tokens = reply.usage[0]
        payload: dict[str, Any] = {
            "id": f"rerank-{uuid.uuid4().hex[:16]}",
            "model": body.get("model", "scripted-rerank"),
            "results": [{"index": i, "relevance_score": score} for i, score in ranked],
        }
        if reply is None or reply.include_usage:
            payload["usage"] = {"total_tokens": tokens}
        self._json(200, payload)


def _prompt_words(messages: list[Any]) -> int:
    total = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += count_words(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += count_words(part["text"])
    return max(total, 1)
