"""The bench's URLconf: the platform's URLs, plus the baselines of bench/request_bench.py,
each a plain Django view over the same rows, and the server's GC pauses.

Mounted only by bench/request_settings.py (never by the platform's settings).
"""

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
_gc_started: list[float] = []
_gc_pauses: list[dict[str, Any]] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _gc_started.append(time.perf_counter())
    elif _gc_started:
        pause = time.perf_counter() - _gc_started.pop()
        _gc_pauses.append({"ms": round(pause * 1000, 2), "collected": info["collected"]})


gc.callbacks.append(_on_gc)


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
    path("", include("config.urls")),
]
