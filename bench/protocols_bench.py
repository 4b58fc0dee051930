"""Protocol benchmark: time to first token of an answer over the open agent protocols
against the native stream, measured alternately in one run against one server.

    python bench/protocols_bench.py [--parts a2a] [--repeats 20] [--tokens 50]

Embedded profile (a fresh SQLite file), uvicorn in a child process, the scripted
OpenAI-compatible server in this process (first token as soon as asked). Prints one JSON
object with, per part, the median time to first answer token of:

- `native`: `POST /api/v1/conversations` then `POST .../messages` with `stream: true`,
  timed from before the conversation is created (an A2A message creates its conversation
  too), to the first `answer.delta` event (and, for reference, from the message's POST);
- `a2a`: `SendStreamingMessage` on `/a2a/agents/<slug>/rpc`, to the first artifact chunk;

and the added time (`a2a` minus `native`).
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.streaming_bench import (  # noqa: E402
    _free_port,
    _prepare_environment,
    _start_server,
)


async def _native_ttft(client) -> tuple[float, float]:
    """(from before creating the conversation, from the message's POST)."""
    start = time.perf_counter()
    r = await client.post("/api/v1/conversations", json={"agent_id": "bench", "title": "bench"})
    conv = r.json()["data"]["id"]
    sent = time.perf_counter()
    async with client.stream(
        "POST", f"/api/v1/conversations/{conv}/messages", json={"content": "go", "stream": True}
    ) as response:
        elapsed = None
        async for line in response.aiter_lines():  # to the end: the run ends before the next
            if elapsed is None and line.startswith("event: answer.delta"):
                elapsed = time.perf_counter() - start
            elif line.startswith("event: end"):
                break
    if elapsed is None:
        raise RuntimeError("no answer.delta")
    return elapsed, elapsed - (sent - start)


async def _a2a_ttft(client, counter: list[int]) -> float:
    counter[0] += 1
    body = {
        "jsonrpc": "2.0",
        "id": counter[0],
        "method": "SendStreamingMessage",
        "params": {
            "message": {
                "messageId": f"bench-{counter[0]}",
                "role": "ROLE_USER",
                "parts": [{"text": "go"}],
            }
        },
    }
    start = time.perf_counter()
    elapsed = None
    async with client.stream(
        "POST", "/a2a/agents/bench/rpc", json=body, headers={"A2A-Version": "1.0"}
    ) as response:
        async for line in response.aiter_lines():  # to the end: the run ends before the next
            if elapsed is None and line.startswith("data:") and "artifactUpdate" in line:
                elapsed = time.perf_counter() - start
    if elapsed is None:
        raise RuntimeError("no artifact update")
    return elapsed


async def _measure(url: str, key: str, args: argparse.Namespace) -> dict:
    import httpx

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as client:
        counter = [0]
        await _native_ttft(client)  # warm-up, both paths
        await _a2a_ttft(client, counter)
        native, a2a = [], []
        for _ in range(args.repeats):
            native.append(await _native_ttft(client))
            if "a2a" in args.parts:
                a2a.append(await _a2a_ttft(client, counter))
        with_create = statistics.median(n[0] for n in native)
        result: dict = {
            "native_ttft_ms": round(with_create * 1000, 1),
            "native_message_only_ttft_ms": round(statistics.median(n[1] for n in native) * 1000, 1),
        }
        if a2a:
            median = statistics.median(a2a)
            result["a2a"] = {
                "ttft_ms": round(median * 1000, 1),
                "added_ms": round((median - with_create) * 1000, 1),
            }
        return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="+", default=["a2a"], choices=["a2a"])
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
        try:
            for _ in range(300):
                try:
                    httpx.get(url + "/api/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            result = asyncio.run(_measure(url, key, args))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        print(json.dumps({"server": "uvicorn", "repeats": args.repeats, **result}, indent=2))
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
