"""Request-path benchmark: every API call beside a plain Django view over the same rows.

    python bench/request_bench.py [--requests 1200] [--chunks 100000] [--agents 50]
                                  [--profile] [--server uvicorn] [--bystander [--streams 20]]

Embedded profile by default (a fresh SQLite file in a temporary folder, local-memory
cache). With DATABASE_URL set (PostgreSQL + pgvector) it creates and drops a database
named `bench_request` on that server; with REDIS_URL set, the cache (rate limits) is
Redis, as in production.

It seeds one workspace (an API key, `--agents` agents, a knowledge base of `--chunks`
full-text chunks), starts the real server (uvicorn, `config.asgi`) in a child process
with `bench/request_settings.py` (the ordinary settings plus bench/request_urls.py, which
mounts the baselines: plain Django views returning `JsonResponse(list(...values()))` of
the same rows, and the server's GC pause record), then sends sequential requests over
one keep-alive connection, alternating platform and baseline, and prints one JSON object:

- `list`: `GET /api/v1/agents?limit=50` with the API key vs the plain view of the same
  50 rows: median, p95, p99 of each, the median ratio and the p99 / median of the list;
- `detail`: `GET /api/v1/knowledge-bases/{id}` with the API key vs the plain view;
- `search`: `POST /api/v1/knowledge-bases/{id}/search` (full-text mode) vs the plain
  view running the same SQL, and that SQL alone timed in the bench process (`raw_sql`);
- `gc`: the full collections the server made while the phases ran (pause of each, via
  `gc.callbacks`), its tracked and frozen object counts.

`--bystander` adds a last phase (the issue's bystander target): the list GET timed
`--bystander-requests` times on the idle server, then again while `--streams` (20)
answers stream from the same server process at 50 tokens/s each (the scripted model
server and the stream clients run in another process), then idle again; it reports each
one's median / p95 / p99, the p99 ratio (target <= 2), the tokens/s the streams got and
the server's CPU share, its event loop's lag (how late a 10 ms sleep wakes) and its full
collections meanwhile.

`--profile` also profiles (pyinstrument) a list, a detail, a create and a search,
`--profile-requests` times each, through the same middleware, authentication and views
in the bench process (Django's test client: the handler without the ASGI server), and
prints the call trees.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VOCABULARY_SIZE = 5000
SETTINGS = "bench.request_settings"


def _prepare_environment() -> str:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    url = os.environ.get("DATABASE_URL", "")
    folder = tempfile.mkdtemp(prefix="bench-request-")
    os.environ["VAR_DIR"] = folder
    if url.startswith("postgres"):
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        parts = urlsplit(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_request")
            conn.execute("CREATE DATABASE bench_request")
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/bench_request"))
        return "postgresql"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite"


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index] * 1000, 2)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50_ms": _ms(values, 0.5), "p95_ms": _ms(values, 0.95), "p99_ms": _ms(values, 0.99)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection

    from apps.agents.services import agent_create
    from apps.knowledge.models import Chunk, Document, KnowledgeBase
    from apps.users.actors import SESSION_CREDENTIAL, actor_resolve
    from apps.users.services import api_key_create, user_create

    rng = random.Random(7)
    user = user_create(email="bench@example.com", password="bench-password-123", name="Bench")
    actor = actor_resolve(user=user, credential=SESSION_CREDENTIAL, requested_workspace_id=None)
    _, api_key = api_key_create(actor=actor, name="bench")
    for index in range(args.agents):
        agent_create(
            actor=actor,
            values={
                "name": f"Agent {index}",
                "description": f"Bench agent number {index}, with a description.",
                "system_prompt": "You are a helpful assistant. " * 20,
                "starter_questions": ["What can you do?", "Summarise this."],
            },
            visibility="workspace",
        )
    kb = KnowledgeBase.objects.create(
        workspace=actor.workspace, name="bench", language="simple", top_k=10
    )
    document = Document.objects.create(
        knowledge_base=kb,
        name="synthetic.txt",
        source="text",
        kind="text",
        checksum="bench",
        status="indexed",
    )
    vocabulary = [f"w{i}" for i in range(VOCABULARY_SIZE)]
    batch: list[Chunk] = []
    for position in range(args.chunks):
        batch.append(
            Chunk(
                knowledge_base=kb,
                document=document,
                position=position,
                content=" ".join(rng.choice(vocabulary) for _ in range(30)),
                token_count=30,
                fts_config="simple",
            )
        )
        if len(batch) == 5000:
            Chunk.objects.bulk_create(batch)
            batch = []
    if batch:
        Chunk.objects.bulk_create(batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE knowledge_chunk")
    queries = [" ".join(rng.choice(vocabulary) for _ in range(3)) for _ in range(200)]
    streaming_agent = ""
    if args.bystander:
        streaming_agent = _seed_streaming_model(actor.workspace, args.llm_port)
    return {
        "streaming_agent": streaming_agent,
        "user": user,
        "workspace_id": str(actor.workspace.id),
        "api_key": api_key,
        "kb_id": str(kb.id),
        "queries": queries,
    }


def _seed_streaming_model(workspace: Any, llm_port: int) -> str:
    """The scripted model server (started by the stream clients' process on `llm_port`)
    as the model of the workspace's first agent: the agent the bystander phase streams."""
    from apps.agents.models import Agent
    from apps.providers.models import DefaultModel, Provider, ProviderModel

    provider = Provider.objects.create(
        workspace=workspace,
        name="scripted",
        kind="openai",
        base_url=f"http://127.0.0.1:{llm_port}/v1",
    )
    model = ProviderModel.objects.create(
        provider=provider, name="scripted-chat", kind="chat", context_window=128000
    )
    DefaultModel.objects.create(workspace=workspace, kind="chat", model=model)
    agent = Agent.objects.filter(workspace=workspace).order_by("created_at").first()
    assert agent is not None
    Agent.objects.filter(pk=agent.pk).update(model=model)
    return str(agent.pk)


def _raw_search(kb_id: str, queries: list[str], n: int) -> list[float]:
    """The full-text SQL of the search endpoint alone, on the bench's own connection."""
    import uuid

    from django.db import connection

    from apps.knowledge.search import Filters, fulltext_sql

    times = []
    for i in range(n):
        built = fulltext_sql(
            kb_ids=[uuid.UUID(kb_id)],
            config="simple",
            query=queries[i % len(queries)],
            top_k=10,
            filters=Filters(),
        )
        assert built is not None
        sql, params = built
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()
        times.append(time.perf_counter() - t0)
    return times


def _start_server(server: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONPATH": str(ROOT)}
    if server == "uvicorn":
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def _wait_ready(client: Any, seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.HTTPError:  # not listening yet
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not start")


def _pairs(client: Any, n: int, platform: Any, plain: Any) -> tuple[list[float], list[float]]:
    """n requests of each, alternating, so both see the same machine at the same time."""
    platform_times, plain_times = [], []
    for i in range(n):
        for call, times in ((platform, platform_times), (plain, plain_times)):
            t0 = time.perf_counter()
            response = call(i)
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text[:300]
    return platform_times, plain_times


def _measure(args: argparse.Namespace, seed: dict[str, Any]) -> dict[str, Any]:
    import httpx

    port = _free_port()
    process = _start_server(args.server, port)
    headers = {"Authorization": f"Bearer {seed['api_key']}"}
    kb, ws, queries = seed["kb_id"], seed["workspace_id"], seed["queries"]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _wait_ready(client)

            def api_list(i: int) -> Any:
                return client.get("/api/v1/agents", params={"limit": 50}, headers=headers)

            def plain_list(i: int) -> Any:
                return client.get("/bench/plain/agents", params={"workspace": ws, "limit": 50})

            def api_detail(i: int) -> Any:
                return client.get(f"/api/v1/knowledge-bases/{kb}", headers=headers)

            def plain_detail(i: int) -> Any:
                return client.get(f"/bench/plain/knowledge-bases/{kb}")

            def api_search(i: int) -> Any:
                body = {"query": queries[i % len(queries)], "top_k": 10, "mode": "fulltext"}
                return client.post(
                    f"/api/v1/knowledge-bases/{kb}/search", json=body, headers=headers
                )

            def plain_search(i: int) -> Any:
                return client.get(
                    f"/bench/plain/knowledge-bases/{kb}/search",
                    params={"q": queries[i % len(queries)]},
                )

            assert len(api_list(0).json()["data"]) == args.agents
            # Warm up every path, then start the steady state from a clean GC record.
            for _ in range(3):
                _pairs(client, 100, api_list, plain_list)
                _pairs(client, 50, api_detail, plain_detail)
                _pairs(client, 50, api_search, plain_search)
            client.get("/bench/gc")
            started = time.monotonic()
            list_api, list_plain = _pairs(client, args.requests, api_list, plain_list)
            detail_api, detail_plain = _pairs(client, args.requests, api_detail, plain_detail)
            search_api, search_plain = _pairs(client, args.searches, api_search, plain_search)
            gc_record = client.get("/bench/gc").json()
            elapsed = time.monotonic() - started
            bystander = None
            if args.bystander:
                bystander = _bystander(args, seed, port, process, (api_list, plain_list))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    raw = _raw_search(kb, queries, args.searches)
    pauses = [p["ms"] for p in gc_record["full_collections"]]
    figures: dict[str, Any] = {
        "list": {
            "platform": _summary(list_api),
            "plain": _summary(list_plain),
            "median_ratio": round(statistics.median(list_api) / statistics.median(list_plain), 2),
            "p99_over_median": round(_ms(list_api, 0.99) / _ms(list_api, 0.5), 2),
        },
        "detail": {
            "platform": _summary(detail_api),
            "plain": _summary(detail_plain),
            "median_over_plain_ms": round(_ms(detail_api, 0.5) - _ms(detail_plain, 0.5), 2),
        },
        "search": {
            "platform": _summary(search_api),
            "plain": _summary(search_plain),
            "raw_sql": _summary(raw),
            "p95_over_raw_sql_ms": round(_ms(search_api, 0.95) - _ms(raw, 0.95), 2),
            "p95_over_plain_ms": round(_ms(search_api, 0.95) - _ms(search_plain, 0.95), 2),
        },
        "gc": {
            "steady_seconds": round(elapsed, 1),
            "full_collections": len(pauses),
            "max_pause_ms": max(pauses, default=0.0),
            "pauses_ms": pauses[:20],
            "max_pause_cpu_ms": max(
                (p.get("cpu_ms", 0.0) for p in gc_record["full_collections"]), default=0.0
            ),
            "tracked_objects": gc_record["tracked_objects"],
            "frozen_objects": gc_record["frozen_objects"],
        },
    }
    if bystander:
        figures["bystander"] = bystander
    return figures


# --- the bystander phase -------------------------------------------------------------

PACE = 0.02  # the scripted model's upstream pace: 50 tokens/s per answer, as in
# bench/streaming_bench.py


def _tree_cpu_seconds(pid: int) -> float:
    from bench.streaming_bench import _cpu_seconds

    return _cpu_seconds(pid)


def _bystander(
    args: argparse.Namespace, seed: dict[str, Any], port: int, server: Any, calls: Any
) -> dict[str, Any]:
    """The list GET and its plain view (alternating, as in the other phases)
    `--bystander-requests` times each on an idle server, then the same while `--streams`
    answers stream from the same server process (another process runs the scripted model
    and the stream clients, so their CPU is not this one's), then idle again. The plain
    view beside it tells the request path's share from the process's (a plain view that
    waits as long waits for the same thread or loop)."""
    import httpx

    platform, plain = calls
    probe = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def phase() -> tuple[list[float], list[float]]:
        return _pairs_timed(args.bystander_requests, platform, plain)

    probe.get("/bench/loop-lag")  # starts the server's lag monitor
    idle, idle_plain = phase()
    idle_lag = probe.get("/bench/loop-lag").json()
    clients = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--stream-clients",
            json.dumps(
                {
                    "url": f"http://127.0.0.1:{port}",
                    "key": seed["api_key"],
                    "agent": seed["streaming_agent"],
                    "streams": args.streams,
                    "llm_port": args.llm_port,
                    "answer_tokens": args.answer_tokens,
                }
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert clients.stdin is not None and clients.stdout is not None
    try:
        ready = clients.stdout.readline().strip()
        if ready != "ready":
            raise SystemExit(f"the stream clients did not start: {ready!r}")
        probe.get("/bench/loop-lag")
        probe.get("/bench/gc")
        cpu0, t0 = _tree_cpu_seconds(server.pid), time.monotonic()
        busy, busy_plain = phase()
        cpu1, t1 = _tree_cpu_seconds(server.pid), time.monotonic()
        busy_lag = probe.get("/bench/loop-lag").json()
        busy_gc = [p["ms"] for p in probe.get("/bench/gc").json()["full_collections"]]
        clients.stdin.close()
        counts = json.loads(clients.stdout.readline())
    finally:
        if clients.poll() is None:
            clients.terminate()
        clients.wait(timeout=30)
    after, _ = phase()
    probe.close()
    seconds = t1 - t0
    return {
        "request": "GET /api/v1/agents?limit=50 (API key), beside the plain view",
        "streams": args.streams,
        "answer_tokens": args.answer_tokens,
        "idle": _summary(idle),
        "while_streaming": _summary(busy),
        "idle_after": _summary(after),
        "p99_ratio": round(_ms(busy, 0.99) / _ms(idle, 0.99), 2),
        "median_ratio": round(_ms(busy, 0.5) / _ms(idle, 0.5), 2),
        "plain_idle": _summary(idle_plain),
        "plain_while_streaming": _summary(busy_plain),
        "plain_p99_ratio": round(_ms(busy_plain, 0.99) / _ms(idle_plain, 0.99), 2),
        "stream_tokens_per_s": round(counts["tokens_during"] / seconds, 1),
        "stream_tokens_per_s_expected": round(args.streams / PACE, 1),
        "stream_answers_started_per_s": round(counts["answers_during"] / seconds, 2),
        "stream_errors": counts["errors"],
        "server_cpu_share_while_streaming": round((cpu1 - cpu0) / seconds, 2),
        # How late the server's event loop wakes a 10 ms sleep, idle and while streaming;
        # the full collections it made while streaming.
        "loop_lag_idle": idle_lag,
        "loop_lag_while_streaming": busy_lag,
        "gc_while_streaming_ms": busy_gc[:20],
    }


def _pairs_timed(n: int, platform: Any, plain: Any) -> tuple[list[float], list[float]]:
    first, second = [], []
    for i in range(n):
        first.append(_timed(platform, i))
        second.append(_timed(plain, i))
    return first, second


def _timed(call: Any, i: int) -> float:
    t0 = time.perf_counter()
    response = call(i)
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, response.text[:300]
    return elapsed


def _stream_clients(config: dict[str, Any]) -> None:
    """The bystander phase's other process: the scripted model server on `llm_port` and
    `streams` clients, each streaming one long answer after another (titled conversations:
    no title call), until stdin closes. Prints `ready` once every stream has its first
    token, then the token count while it was measured and the errors."""
    import asyncio

    import httpx

    from apps.providers.scripted import ScriptedLLM

    llm = ScriptedLLM(port=config["llm_port"]).start()
    llm.default_text = " ".join(f"t{i}" for i in range(config["answer_tokens"]))
    llm.token_delay = PACE
    streams = config["streams"]
    counts = {"tokens": 0, "errors": 0, "answers": 0}
    started: set[int] = set()

    async def one_stream(client: httpx.AsyncClient, i: int) -> None:
        while True:
            try:
                response = await client.post(
                    "/api/v1/conversations", json={"agent_id": config["agent"], "title": "b"}
                )
                conversation = response.json()["data"]["id"]
                async with client.stream(
                    "POST",
                    f"/api/v1/conversations/{conversation}/messages",
                    json={"content": "go", "stream": True},
                ) as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("event: answer.delta"):
                            counts["tokens"] += 1
                            if i not in started:
                                started.add(i)
                                if len(started) == streams:
                                    print("ready", flush=True)
                        elif line.startswith("event: end"):
                            break
                counts["answers"] += 1
            except (httpx.HTTPError, KeyError, ValueError):
                counts["errors"] += 1
                await asyncio.sleep(0.2)

    async def main() -> None:
        limits = httpx.Limits(max_connections=streams + 10)
        headers = {"Authorization": f"Bearer {config['key']}"}
        async with httpx.AsyncClient(
            base_url=config["url"], headers=headers, timeout=120, limits=limits
        ) as client:
            tasks = [asyncio.create_task(one_stream(client, i)) for i in range(streams)]
            while len(started) < streams:
                await asyncio.sleep(0.05)
            tokens_at_ready, answers_at_ready = counts["tokens"], counts["answers"]
            await asyncio.to_thread(sys.stdin.read)  # until the bench closes it
            counts["tokens_during"] = counts["tokens"] - tokens_at_ready
            counts["answers_during"] = counts["answers"] - answers_at_ready
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        llm.stop()
    print(json.dumps(counts), flush=True)


def _profile(args: argparse.Namespace, seed: dict[str, Any]) -> None:
    """pyinstrument over `--profile-requests` of each kind, through Django's handler in
    this process (same settings, middleware, authentication and views)."""
    from django.test import Client
    from pyinstrument import Profiler

    client = Client(HTTP_AUTHORIZATION=f"Bearer {seed['api_key']}")
    kb = seed["kb_id"]
    n = args.profile_requests

    def create(i: int) -> Any:
        return client.post(
            "/api/v1/agents",
            {"name": f"Profiled {i}", "system_prompt": "Be brief."},
            content_type="application/json",
        )

    kinds = {
        "list": lambda i: client.get("/api/v1/agents", {"limit": 50}),
        "detail": lambda i: client.get(f"/api/v1/knowledge-bases/{kb}"),
        "create": create,
        "search": lambda i: client.post(
            f"/api/v1/knowledge-bases/{kb}/search",
            {"query": seed["queries"][i % 200], "top_k": 10, "mode": "fulltext"},
            content_type="application/json",
        ),
    }
    for name, call in kinds.items():
        for i in range(20):
            call(-i - 1)
        profiler = Profiler(interval=0.001)
        profiler.start()
        t0 = time.perf_counter()
        for i in range(n):
            response = call(i)
            assert response.status_code in (200, 201), response.content[:300]
        elapsed = time.perf_counter() - t0
        profiler.stop()
        print(f"=== {name}: {elapsed / n * 1000:.2f} ms per request (in-process, profiled)")
        print(profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--searches", type=int, default=400)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-requests", type=int, default=200)
    parser.add_argument(
        "--bystander",
        action="store_true",
        help="also time a list GET while --streams answers stream in the same server",
    )
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--bystander-requests", type=int, default=600)
    parser.add_argument(
        "--answer-tokens", type=int, default=500, help="per streamed answer (50 tokens/s)"
    )
    parser.add_argument("--stream-clients", help=argparse.SUPPRESS)  # the phase's child
    args = parser.parse_args()
    if args.stream_clients:
        _stream_clients(json.loads(args.stream_clients))
        return
    args.llm_port = _free_port()
    vendor = _prepare_environment()
    if args.bystander:
        os.environ["OUTBOUND_ALLOWED_HOSTS"] = "127.0.0.1"  # the scripted model server

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    seed = _seed(args)
    connection.close()  # SQLite: nothing held open while the server runs
    figures: dict[str, Any] = {
        "profile": vendor,
        "cache": "redis" if os.environ.get("REDIS_URL") else "locmem",
        "server": args.server,
        "agents": args.agents,
        "chunks": args.chunks,
        "seed_s": round(time.monotonic() - started, 1),
        "requests": args.requests,
    }
    figures.update(_measure(args, seed))
    print(json.dumps(figures), flush=True)
    if args.profile:
        _profile(args, seed)
    connection.close()


if __name__ == "__main__":
    main()
