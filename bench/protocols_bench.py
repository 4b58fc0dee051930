"""Protocols benchmark: the time to first token an open agent protocol adds to the native
stream, measured side by side in one run (alternating requests, same agent, same pace).

    python bench/protocols_bench.py [--parts agui a2a] [--repeats 20] [--tokens 50]

Embedded profile (a fresh SQLite file, in-memory channel layer); the scripted
OpenAI-compatible server runs in this process, the platform in a child process (uvicorn)
on 127.0.0.1. Each part prints its medians in one JSON object:

- agui: a new conversation's message streamed natively (`POST /conversations/{id}/messages`
  with `stream: true`, first `answer.delta`) vs a new AG-UI thread
  (`POST /agents/{agent}/ag-ui`, first `TEXT_MESSAGE_CONTENT`), client side. The native
  time is given with the request creating the conversation before it (an AG-UI run
  creates its thread in its one request) and for the send alone.
- a2a: the same native pair vs an A2A `SendStreamingMessage` to `/a2a/agents/{slug}/rpc`
  (first artifact chunk), which creates its conversation in its one request too.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streaming_bench import _free_port, _prepare_environment, _start_server  # noqa: E402

PACE = 0.02  # 50 tokens/s upstream


async def _first_token(client, url: str, body: dict, marker: str) -> float:
    """The perf_counter() at which the first line holding `marker` arrived."""
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if marker in line:
                return time.perf_counter()
    raise AssertionError(f"no {marker} in the stream of {url}")


async def _agui(url: str, key: str, args: argparse.Namespace) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:

        async def native() -> tuple[float, float]:
            started = time.perf_counter()
            r = await client.post(
                "/api/v1/conversations", json={"agent_id": "bench", "title": "bench"}
            )
            conv = r.json()["data"]["id"]
            sent = time.perf_counter()
            first = await _first_token(
                client,
                f"/api/v1/conversations/{conv}/messages",
                {"content": "go", "stream": True},
                "event: answer.delta",
            )
            return first - started, first - sent

        async def agui() -> float:
            body = {
                "threadId": str(uuid.uuid4()),
                "runId": str(uuid.uuid4()),
                "messages": [{"id": "m1", "role": "user", "content": "go"}],
                "tools": [],
                "context": [],
            }
            started = time.perf_counter()
            first = await _first_token(
                client, "/api/v1/agents/bench/ag-ui", body, '"type":"TEXT_MESSAGE_CONTENT"'
            )
            return first - started

        await native(), await agui()  # warm up both paths
        natives, sends, aguis = [], [], []
        for _ in range(args.repeats):
            total, send = await native()
            natives.append(total)
            sends.append(send)
            aguis.append(await agui())
    n, s, a = (statistics.median(v) for v in (natives, sends, aguis))
    return {
        "repeats": args.repeats,
        "native_ttft_ms": round(n * 1000, 1),
        "native_send_only_ttft_ms": round(s * 1000, 1),
        "agui_ttft_ms": round(a * 1000, 1),
        "agui_added_ms": round((a - n) * 1000, 1),
        "agui_added_vs_send_only_ms": round((a - s) * 1000, 1),
    }


async def _a2a(url: str, key: str, args: argparse.Namespace) -> dict:
    """A new conversation's message streamed natively vs an A2A `SendStreamingMessage`
    (`/a2a/agents/{slug}/rpc`, first artifact chunk: the answer's first token), which
    creates its conversation in its one request."""
    import httpx

    headers = {"Authorization": f"Bearer {key}", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:

        async def native() -> tuple[float, float]:
            started = time.perf_counter()
            r = await client.post(
                "/api/v1/conversations", json={"agent_id": "bench", "title": "bench"}
            )
            conv = r.json()["data"]["id"]
            sent = time.perf_counter()
            first = await _first_token(
                client,
                f"/api/v1/conversations/{conv}/messages",
                {"content": "go", "stream": True},
                "event: answer.delta",
            )
            return first - started, first - sent

        async def a2a() -> float:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendStreamingMessage",
                "params": {
                    "message": {
                        "messageId": str(uuid.uuid4()),
                        "role": "ROLE_USER",
                        "parts": [{"text": "go"}],
                    }
                },
            }
            started = time.perf_counter()
            first = await _first_token(client, "/a2a/agents/bench/rpc", body, "artifactUpdate")
            return first - started

        await native(), await a2a()  # warm up both paths
        natives, sends, a2as = [], [], []
        for _ in range(args.repeats):
            total, send = await native()
            natives.append(total)
            sends.append(send)
            a2as.append(await a2a())
    n, s, a = (statistics.median(v) for v in (natives, sends, a2as))
    return {
        "repeats": args.repeats,
        "native_ttft_ms": round(n * 1000, 1),
        "native_send_only_ttft_ms": round(s * 1000, 1),
        "a2a_ttft_ms": round(a * 1000, 1),
        "a2a_added_ms": round((a - n) * 1000, 1),
        "a2a_added_vs_send_only_ms": round((a - s) * 1000, 1),
    }


PARTS = {"agui": _agui, "a2a": _a2a}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--database-url", help="an empty PostgreSQL database (production)")
    parser.add_argument("--redis-url", help="Redis for the channel layer (production)")
    args = parser.parse_args()
    _prepare_environment(args)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import httpx

    from apps.agents.models import Agent
    from apps.providers.models import DefaultModel, Provider, ProviderModel
    from apps.providers.scripted import ScriptedLLM
    from apps.users.services import user_create
    from tests.users.factories import make_api_key

    llm = ScriptedLLM().start()
    llm.default_text = " ".join(f"t{i}" for i in range(args.tokens))
    llm.token_delay = PACE
    proc = None
    try:
        user = user_create(email="bench@example.com", password="bench-password-123", name="B")
        workspace = user.memberships.get().workspace
        provider = Provider.objects.create(
            workspace=workspace, name="scripted", kind="openai", base_url=llm.base_url
        )
        model = ProviderModel.objects.create(
            provider=provider, name="scripted-chat", kind="chat", context_window=128000
        )
        DefaultModel.objects.create(workspace=workspace, kind="chat", model=model)
        Agent.objects.create(
            workspace=workspace, created_by=user, name="Bench", slug="bench", model=model
        )
        _, key = make_api_key(user=user, workspace=workspace)
        port = _free_port()
        proc = _start_server("uvicorn", port, 1)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/api/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        results = {part: asyncio.run(PARTS[part](url, key, args)) for part in args.parts}
        print(json.dumps({"pace_tokens_per_s": 1 / PACE, **results}, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        llm.stop()


if __name__ == "__main__":
    main()
