"""Benchmark: concurrent streamed chats through the provider adapter (openai SDK + the
outbound guard) against the scripted model server, in one process and one event loop.

    python bench/providers_stream.py --streams 200 --tokens 100 --token-delay 0.01

Prints time to first token (p50/p95), total time and tokens per second. No database: this
measures the client path (SDK, guarded transport, SSE parsing), not usage accounting.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.setdefault("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")

import django

django.setup()

from apps.providers.adapters import ChatRequest, Endpoint, OpenAIAdapter  # noqa: E402
from apps.providers.scripted import ScriptedLLM  # noqa: E402
from apps.providers.types import TextDelta  # noqa: E402


async def one(endpoint: Endpoint) -> tuple[float, int]:
    adapter = OpenAIAdapter(endpoint)
    started = time.perf_counter()
    first = 0.0
    count = 0
    try:
        request = ChatRequest(model="scripted-chat", messages=[{"role": "user", "content": "go"}])
        async for event in adapter.stream_chat(request):
            if isinstance(event, TextDelta):
                if not count:
                    first = time.perf_counter() - started
                count += 1
    finally:
        await adapter.aclose()
    return first, count


async def main(args: argparse.Namespace) -> None:
    server = ScriptedLLM().start()
    server.token_delay = args.token_delay
    server.default_text = " ".join(["token"] * args.tokens)
    endpoint = Endpoint(
        kind="openai",
        base_url=server.base_url,
        api_key="bench",
        connect_timeout=10,
        read_timeout=60,
    )
    started = time.perf_counter()
    results = await asyncio.gather(*(one(endpoint) for _ in range(args.streams)))
    elapsed = time.perf_counter() - started
    server.stop()
    firsts = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    p95 = firsts[int(len(firsts) * 0.95) - 1] if len(firsts) > 1 else firsts[0]
    print(f"streams={args.streams} tokens/stream={args.tokens} delay={args.token_delay}s")
    print(f"first token p50={statistics.median(firsts) * 1000:.0f} ms p95={p95 * 1000:.0f} ms")
    print(f"total {elapsed:.2f} s, {tokens / elapsed:.0f} tokens/s, {tokens} tokens")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--token-delay", type=float, default=0.01)
    asyncio.run(main(parser.parse_args()))
