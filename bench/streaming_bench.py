"""Streaming benchmark: the platform's streamed answers vs the same stream read directly
from the scripted model server, measured side by side in one run, for daphne and uvicorn.

    python bench/streaming_bench.py [--tokens 200] [--concurrent 100] [--idle 1000]

Embedded profile (a fresh SQLite file, in-memory channel layer); the scripted
OpenAI-compatible server runs in this process, the platform in a child process (daphne,
then uvicorn) on 127.0.0.1. Prints one JSON object:

1. latency: median time to first token and median gap between tokens, direct vs through
   the platform (client-side, same pace), the added time, and the server's CPU per token;
2. concurrency: N streams at once at an upstream pace of 50 tokens/s: stalls (a gap over
   2x the pace, 40 ms) and p99 gap; memory per idle stream (RSS growth / M open streams,
   in two waves of M: the second shows the steady cost) and the server's thread count;
3. writes: durable-log rows (one INSERT each) per answer, for answers of growing length.
"""

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PACE = 0.02  # 50 tokens/s upstream
STALL = 2 * PACE


def _prepare_environment(args: argparse.Namespace) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    folder = tempfile.mkdtemp(prefix="bench-streaming-")
    os.environ["VAR_DIR"] = folder
    # The production profile when given (an empty PostgreSQL database, Redis for the
    # channel layer between processes), else the embedded one.
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{folder}/bench.sqlite3"
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ["OUTBOUND_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["RATE_LIMIT_API_KEY"] = "1000000/min"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """The server process and its children (uvicorn's worker processes)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _status_field(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int) -> int:
    return sum(_status_field(p, "VmRSS:") for p in _tree(pid)) * 1024


def _threads(pid: int) -> int:
    return sum(_status_field(p, "Threads:") for p in _tree(pid))


def _start_server(kind: str, port: int, workers: int) -> subprocess.Popen:
    if kind == "daphne":
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--lifespan", "on", "--log-level", "warning", "--no-access-log"]
        cmd += ["--workers", str(workers)]
    cmd.append("config.asgi:application")
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _sse_times(client, method: str, url: str, absolute=False, **kwargs) -> list[float]:
    """Arrival times of answer tokens (platform `answer.delta` events or OpenAI chunks),
    from the request's start (or perf_counter values when `absolute`)."""
    times: list[float] = []
    start = 0.0 if absolute else time.perf_counter()
    async with client.stream(method, url, **kwargs) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: answer.delta"):
                times.append(time.perf_counter() - start)
            elif (
                line.startswith("data: {")
                and '"content":"' in line.replace(" ", "")
                and ("chat.completion.chunk" in line)
            ):
                payload = json.loads(line[6:])
                if payload["choices"] and payload["choices"][0]["delta"].get("content"):
                    times.append(time.perf_counter() - start)
            elif line.startswith("event: end"):
                break
    return times


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def _measure(kind, url, key, agent_ref, llm, args) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=2 * args.idle + max(args.concurrent) + 50)
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=300, limits=limits) as client,
        httpx.AsyncClient(timeout=300, limits=limits) as direct,
    ):

        async def new_conversation() -> str:
            # Titled, so that no title call (a second model call after the first answer)
            # competes with the answers being measured.
            r = await client.post(
                "/api/v1/conversations", json={"agent_id": agent_ref, "title": "bench"}
            )
            return r.json()["data"]["id"]

        async def platform_once(absolute=False) -> list[float]:
            conv = await new_conversation()
            return await _sse_times(
                client,
                "POST",
                f"/api/v1/conversations/{conv}/messages",
                absolute=absolute,
                json={"content": "go", "stream": True},
            )

        async def direct_once(absolute=False) -> list[float]:
            return await _sse_times(
                direct,
                "POST",
                f"{llm.base_url}/chat/completions",
                absolute=absolute,
                json={
                    "model": "scripted-chat",
                    "messages": [{"role": "user", "content": "go"}],
                    "stream": True,
                },
            )

        # 1. latency, alternating direct and platform runs: with an instant upstream, then
        # with one whose first token takes 300 ms (the platform's own work before the
        # model call should overlap it).
        async def latency_of(first_byte_delay: float, repeats: int) -> dict:
            llm.default_text = " ".join(f"t{i}" for i in range(args.tokens))
            llm.default_first_byte_delay = first_byte_delay
            await platform_once()  # warm-up
            direct_runs, platform_runs = [], []
            cpu_before = _cpu_seconds(args.server_pid)
            for _ in range(repeats):
                direct_runs.append(await direct_once())
                platform_runs.append(await platform_once())
            cpu = _cpu_seconds(args.server_pid) - cpu_before
            llm.default_first_byte_delay = 0.0
            tokens = sum(len(t) for t in platform_runs)
            d_ttft = statistics.median(t[0] for t in direct_runs)
            p_ttft = statistics.median(t[0] for t in platform_runs)
            d_gap = statistics.median(g for t in direct_runs for g in _gaps(t))
            p_gap = statistics.median(g for t in platform_runs for g in _gaps(t))
            return {
                "upstream_first_byte_delay_ms": round(first_byte_delay * 1000),
                "tokens_per_answer": tokens // repeats,
                "direct_ttft_ms": round(d_ttft * 1000, 2),
                "platform_ttft_ms": round(p_ttft * 1000, 2),
                "added_ttft_ms": round((p_ttft - d_ttft) * 1000, 2),
                "direct_gap_ms": round(d_gap * 1000, 3),
                "platform_gap_ms": round(p_gap * 1000, 3),
                "added_gap_ms": round((p_gap - d_gap) * 1000, 3),
                "ttft_ratio": round(p_ttft / d_ttft, 2),
                "server_cpu_ms_per_token": round(cpu * 1000 / tokens, 3),
            }

        latency: dict = {}
        latency_slow_upstream: dict = {}
        if "latency" not in args.skip:
            latency = await latency_of(0.0, args.repeats)
            latency["sdk_read_cpu_ms_per_token"] = round(await _sdk_read_cpu(llm) * 1000, 3)
            latency_slow_upstream = await latency_of(0.3, args.repeats)
            print(json.dumps({"latency": latency, "slow": latency_slow_upstream}), file=sys.stderr)

        # 2. concurrency at 50 tokens/s: for each N, N streams started evenly over a ramp
        # (a burst of N requests at once measures the burst, not what is sustained), each
        # long enough to be still streaming after the last one started; gaps are counted in
        # the steady window when all N are open. Direct first, then the platform.
        concurrency = []
        for n in [] if "concurrency" in args.skip else args.concurrent:
            ramp = max(2.0, n / args.start_rate)
            window = (ramp + 1.0, ramp + 1.0 + args.hold)
            llm.default_text = " ".join(f"t{i}" for i in range(int((window[1] + 2) / PACE)))
            row: dict = {"streams": n, "ramp_s": round(ramp, 1), "window_s": args.hold}
            for name, once in (("direct", direct_once), ("platform", platform_once)):

                async def delayed(i: int, once=once, step=ramp / n) -> list[float]:
                    await asyncio.sleep(i * step)
                    return await once(absolute=True)

                t0 = time.perf_counter()
                tasks = [asyncio.create_task(delayed(i)) for i in range(n)]
                await asyncio.sleep(window[0])
                cpu0 = _cpu_seconds(args.server_pid)
                await asyncio.sleep(args.hold)
                cpu1 = _cpu_seconds(args.server_pid)
                done = await asyncio.gather(*tasks, return_exceptions=True)
                runs = [t for t in done if isinstance(t, list)]
                lo, hi = t0 + window[0], t0 + window[1]
                gaps = sorted(
                    b - a for t in runs for a, b in itertools.pairwise(t) if lo <= a and b <= hi
                )
                delivered = sum(1 for t in runs for x in t if lo <= x <= hi)
                row[name] = {
                    "errors": len(done) - len(runs),
                    "stalls": sum(1 for g in gaps if g > STALL),
                    "p99_gap_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 1) if gaps else None,
                    "max_gap_ms": round(gaps[-1] * 1000, 1) if gaps else None,
                    # tokens delivered in the window / tokens the upstream pace promises
                    "delivered_ratio": round(delivered * PACE / (n * args.hold), 3),
                }
                if name == "platform":
                    row[name]["server_cpu_share"] = round((cpu1 - cpu0) / args.hold, 2)
                    row[name]["server_cpu_ms_per_token"] = round(
                        (cpu1 - cpu0) * 1000 / max(delivered, 1), 3
                    )
            concurrency.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)

        # 3. idle streams: open M conversation streams and hold them, in two waves of M:
        # the first wave's growth includes the burst of M requests being handled at once
        # (allocator arenas stay); the second wave, opened while the first stays open,
        # shows what one more open stream really holds. The conversations are made in the
        # database directly (what is measured is the open stream, not the create call).
        async def hold(conv: str, wave: dict) -> None:
            async with client.stream("GET", f"/api/v1/conversations/{conv}/stream") as r:
                assert r.status_code == 200
                wave["ready"] += 1
                if wave["ready"] == args.idle:
                    wave["opened"].set()
                async for _ in r.aiter_lines():
                    pass

        idle: dict = {}
        if "idle" not in args.skip:
            idle = await _idle_streams(hold, args)
    return {
        "server": kind,
        "latency": latency,
        "latency_slow_upstream": latency_slow_upstream,
        "concurrency": concurrency,
        "idle": idle,
    }


async def _idle_streams(hold, args) -> dict:
    holders: list[asyncio.Task] = []
    before: list[int] = []
    after: list[int] = []
    threads_before = _threads(args.server_pid)
    for _ in range(2):
        convs = await asyncio.to_thread(_bulk_conversations, args.idle)
        before.append(_rss_bytes(args.server_pid))
        wave = {"ready": 0, "opened": asyncio.Event()}
        for i, c in enumerate(convs):
            holders.append(asyncio.create_task(hold(c, wave)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a steady trickle, not one burst
        await asyncio.wait_for(wave["opened"].wait(), timeout=900)
        await asyncio.sleep(3)
        after.append(_rss_bytes(args.server_pid))
    failed = sum(1 for h in holders if h.done() and h.exception() is not None)
    idle = {
        "idle_streams": 2 * args.idle,
        "open_at_end": sum(1 for h in holders if not h.done()),
        "failed": failed,
        "server_threads_before": threads_before,
        "server_threads_while_idle": _threads(args.server_pid),
        "server_rss_mb_while_idle": round(_rss_bytes(args.server_pid) / 2**20, 1),
        "first_wave_rss_growth_mb": round((after[0] - before[0]) / 2**20, 1),
        "kb_per_idle_stream_first_wave": round((after[0] - before[0]) / args.idle / 1024, 1),
        "kb_per_idle_stream_second_wave": round((after[1] - before[1]) / args.idle / 1024, 1),
    }
    for h in holders:
        h.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    return idle


async def _sdk_read_cpu(llm) -> float:
    """CPU seconds per token for just reading the same answer from the scripted server
    with the platform's own provider adapter (the official SDK over the guarded client),
    measured on this thread alone (the scripted server's threads are not counted): the
    floor of what relaying a token can cost, whatever the platform does around it."""
    from apps.providers.adapters import ChatRequest, Endpoint, OpenAIAdapter
    from apps.providers.types import TextDelta

    endpoint = Endpoint("openai", llm.base_url, "bench", 10.0, 120.0)
    request = ChatRequest(model="scripted-chat", messages=[{"role": "user", "content": "go"}])
    adapter = OpenAIAdapter(endpoint)
    try:
        start, tokens = time.thread_time(), 0
        async for event in adapter.stream_chat(request):
            tokens += isinstance(event, TextDelta)
        return (time.thread_time() - start) / max(tokens, 1)
    finally:
        await adapter.aclose()


def _bulk_conversations(count: int) -> list[str]:
    from apps.agents.models import Agent
    from apps.conversations.models import Conversation

    agent = Agent.objects.get(slug="bench")
    rows = [
        Conversation(workspace_id=agent.workspace_id, agent=agent, user_id=agent.created_by_id)
        for _ in range(count)
    ]
    Conversation.objects.bulk_create(rows, batch_size=500)
    return [str(r.id) for r in rows]


def _writes(args, llm, agent_ref, key, url) -> list[dict]:
    """Log rows per answer as the answer grows (same pace)."""
    import httpx

    from apps.conversations.models import Run, RunEvent

    out = []
    for n in args.lengths:
        llm.default_text = " ".join(f"w{i}" for i in range(n))
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as c:
            conv = c.post("/api/v1/conversations", json={"agent_id": agent_ref}).json()["data"][
                "id"
            ]
            with c.stream(
                "POST",
                f"/api/v1/conversations/{conv}/messages",
                json={"content": "go", "stream": True},
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("event: end"):
                        break
        run = Run.objects.filter(conversation_id=conv).get()
        out.append(
            {
                "answer_tokens": n,
                "log_rows": RunEvent.objects.filter(run=run).count(),
                "events": RunEvent.objects.filter(run=run)
                .order_by("-cursor_end")
                .first()
                .cursor_end
                - RunEvent.objects.filter(run=run).order_by("cursor").first().cursor
                + 1,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--concurrent", type=int, nargs="+", default=[50, 100, 200, 500])
    parser.add_argument("--start-rate", type=float, default=25.0, help="new streams per second")
    parser.add_argument("--hold", type=float, default=5.0, help="steady window, seconds")
    parser.add_argument("--idle", type=int, default=2500, help="streams per wave (two waves)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--servers", nargs="+", default=["daphne", "uvicorn"])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (production)")
    parser.add_argument("--redis-url", help="Redis for the channel layer (production)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["latency", "concurrency", "idle", "writes"]
    )
    args = parser.parse_args()
    _prepare_environment(args)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from http.server import ThreadingHTTPServer

    from apps.agents.models import Agent
    from apps.providers.models import DefaultModel, Provider, ProviderModel
    from apps.providers.scripted import ScriptedLLM
    from apps.users.services import user_create
    from tests.users.factories import make_api_key

    ThreadingHTTPServer.request_queue_size = 1024  # bursts of connections, not refusals
    llm = ScriptedLLM().start()
    llm.default_text = " ".join(f"t{i}" for i in range(args.tokens))
    llm.token_delay = PACE
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
        results, writes = [], []
        for kind in args.servers:
            port = _free_port()
            proc = _start_server(kind, port, args.workers)
            url = f"http://127.0.0.1:{port}"
            try:
                import httpx

                for _ in range(300):
                    try:
                        httpx.get(url + "/api/health", timeout=1)
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                args.server_pid = proc.pid
                llm.default_text = " ".join(f"t{i}" for i in range(args.tokens))
                results.append(asyncio.run(_measure(kind, url, key, "bench", llm, args)))
                if kind == args.servers[0] and "writes" not in args.skip:
                    writes = _writes(args, llm, "bench", key, url)
            finally:
                proc.terminate()
                proc.wait(timeout=20)
        print(
            json.dumps({"pace_tokens_per_s": 1 / PACE, "runs": results, "writes": writes}, indent=2)
        )
    finally:
        llm.stop()


if __name__ == "__main__":
    main()
