"""What the operator's dashboard shows: component health, runs in flight, the ingestion
queue and model usage of the last days (a few aggregate queries, whatever the volume)."""

import datetime as dt
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.conversations.models import Run
from apps.core.selectors import health_check
from apps.knowledge.models import Document
from apps.providers.models import UsageRecord

USAGE_DAYS = 14


def operator_dashboard() -> dict[str, Any]:
    runs = dict(
        Run.objects.filter(status__in=["queued", "running", "requires_action"])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    documents = dict(
        Document.objects.filter(status__in=["waiting", "parsing", "embedding", "failed"])
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    since = timezone.now().date() - dt.timedelta(days=USAGE_DAYS - 1)
    per_day: dict[Any, dict[str, Any]] = {
        row["day"]: dict(row)
        for row in UsageRecord.objects.filter(created_at__date__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(calls=Count("id"), tokens=Sum("input_tokens") + Sum("output_tokens"))
        .order_by("day")
    }
    series = []
    for i in range(USAGE_DAYS):
        day = since + dt.timedelta(days=i)
        row: Any = per_day.get(day, {})
        series.append({"date": day, "calls": row.get("calls", 0), "tokens": row.get("tokens") or 0})
    peak = max((s["tokens"] for s in series), default=0) or 1
    for s in series:
        s["height"] = round(100 * s["tokens"] / peak)
    return {
        "health": health_check(),
        "runs": {s: runs.get(s, 0) for s in ("running", "requires_action", "queued")},
        "documents": {
            s: documents.get(s, 0) for s in ("waiting", "parsing", "embedding", "failed")
        },
        "usage": series,
        "usage_calls": sum(s["calls"] for s in series),
    }
