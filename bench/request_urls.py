"""The bench's URLconf: the platform's URLs, plus the baselines of bench/request_bench.py,
each a plain Django view over the same rows, the server's GC pauses and its event loop's lag.

Mounted only by bench/request_settings.py (never by the platform's settings).
"""

import asyncio
import gc
import time
from typing import Any

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from apps.agents.models import Agent
from apps.knowledge.models import KnowledgeBase
from apps.knowledge.search import Filters, fulltext_sql

# Full (generation 2) collections seen by this process: their pause and what they found.
_gc_started: list[tuple[float, float]] = []
_gc_pauses: list[dict[str, Any]] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _gc_started.append((time.perf_counter(), time.thread_time()))
    elif _gc_started:
        wall, cpu = _gc_started.pop()
        _gc_pauses.append(
            {
                "ms": round((time.perf_counter() - wall) * 1000, 2),
                # CPU time of the collecting thread: the pause without the machine's load.
                "cpu_ms": round((time.thread_time() - cpu) * 1000, 2),
                "collected": info["collected"],
            }
        )


gc.callbacks.append(_on_gc)


# The event loop's lag: how late a 10 ms sleep wakes up, sampled while the monitor runs.
LAG_TICK = 0.01
_lag_ms: list[float] = []
_lag_monitor: list[asyncio.Task[None]] = []


async def _monitor_lag() -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(LAG_TICK)
        _lag_ms.append((loop.time() - started - LAG_TICK) * 1000)


async def loop_lag(request: HttpRequest) -> JsonResponse:
    """Starts the lag monitor on the server's loop (first call); every call returns the
    lag's median, p99 and maximum since the previous call, then forgets them."""
    if not _lag_monitor:
        _lag_monitor.append(asyncio.get_running_loop().create_task(_monitor_lag()))
    samples = sorted(_lag_ms)
    _lag_ms.clear()
    if not samples:
        return JsonResponse({"samples": 0})
    return JsonResponse(
        {
            "samples": len(samples),
            "p50_ms": round(samples[len(samples) // 2], 1),
            "p99_ms": round(samples[int(len(samples) * 0.99)], 1),
            "max_ms": round(samples[-1], 1),
        }
    )


def plain_agents(request: HttpRequest) -> JsonResponse:
    """The 50 agents of the list, as a plain view reads them (no auth, no serializer)."""
    rows = Agent.objects.filter(workspace_id=request.GET["workspace"]).order_by(
        "-created_at", "-id"
    )[: int(request.GET.get("limit", 50))]
    return JsonResponse(list(rows.values()), safe=False)


def plain_knowledge_base(request: HttpRequest, pk: str) -> JsonResponse:
    """One knowledge base by id (no auth, no serializer)."""
    return JsonResponse(KnowledgeBase.objects.filter(pk=pk).values().first())


def plain_search(request: HttpRequest, pk: str) -> JsonResponse:
    """The full-text query the search endpoint runs, and its rows (no auth, no hydration)."""
    built = fulltext_sql(
        kb_ids=[pk], config="simple", query=request.GET["q"], top_k=10, filters=Filters()
    )
    assert built is not None
    sql, params = built
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return JsonResponse([list(map(str, row)) for row in rows], safe=False)


def gc_stats(request: HttpRequest) -> JsonResponse:
    """The full collections since the last call (then forgets them), and the tracked and
    frozen object counts."""
    pauses = list(_gc_pauses)
    _gc_pauses.clear()
    return JsonResponse(
        {
            "full_collections": pauses,
            "tracked_objects": len(gc.get_objects()),
            "frozen_objects": gc.get_freeze_count(),
            "counts": gc.get_count(),
        }
    )


def gc_collect(request: HttpRequest) -> JsonResponse:
    """A full collection now (to start a measured phase from the same state)."""
    started = time.perf_counter()
    collected = gc.collect()
    return JsonResponse(
        {"collected": collected, "ms": round((time.perf_counter() - started) * 1000, 2)}
    )


urlpatterns = [
    path("bench/plain/agents", plain_agents),
    path("bench/plain/knowledge-bases/<uuid:pk>", plain_knowledge_base),
    path("bench/plain/knowledge-bases/<uuid:pk>/search", plain_search),
    path("bench/gc", gc_stats),
    path("bench/gc/collect", gc_collect),
    path("bench/loop-lag", loop_lag),
    path("", include("config.urls")),
]
