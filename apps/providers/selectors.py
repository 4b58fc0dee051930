"""Reads of providers, models, defaults and usage; every one is scoped to the actor."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from apps.core.exceptions import PermissionDenied
from apps.providers.choices import ModelKind
from apps.providers.exceptions import ModelNotFoundError, ProviderNotFound
from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel, UsageRecord
from apps.users.actors import Actor
from apps.users.choices import Role


def _visible(actor: Actor) -> Q:
    return Q(workspace_id=actor.workspace_id) | Q(workspace__isnull=True)


def provider_list(*, actor: Actor) -> QuerySet[Provider]:
    """The workspace's providers and the platform's (read-only for the workspace)."""
    return Provider.objects.filter(_visible(actor)).prefetch_related("keys", "models")


def access_provider(*, actor: Actor, provider_id: uuid.UUID) -> Provider:
    """A provider the actor can see (the workspace's or a platform one). Raises
    ProviderNotFound for any other."""
    provider = provider_list(actor=actor).filter(pk=provider_id).first()
    if provider is None:
        raise ProviderNotFound()
    return provider


def access_workspace_provider(*, actor: Actor, provider_id: uuid.UUID) -> Provider:
    """A provider the actor may change: the workspace's own, with the admin role.
    Raises ProviderNotFound (invisible), PermissionDenied (a platform provider, which the
    operator manages in the Django admin, or a role below admin)."""
    provider = access_provider(actor=actor, provider_id=provider_id)
    if provider.workspace_id is None:
        raise PermissionDenied("Platform providers are managed by the operator (Django admin).")
    actor.require_role(Role.ADMIN)
    return provider


def access_provider_key(*, provider: Provider, key_id: uuid.UUID) -> ProviderKey:
    key = provider.keys.filter(pk=key_id).first()
    if key is None:
        raise ProviderNotFound("API key not found.", code="provider_key_not_found")
    return key


def model_list(*, actor: Actor, kind: str | None = None) -> QuerySet[ProviderModel]:
    """Every model the workspace may use (its providers' and the platform's)."""
    qs = ProviderModel.objects.select_related("provider").filter(
        Q(provider__workspace_id=actor.workspace_id) | Q(provider__workspace__isnull=True)
    )
    if kind:
        qs = qs.filter(kind=kind)
    return qs


def access_model(
    *, actor: Actor, model_id: uuid.UUID, provider: Provider | None = None
) -> ProviderModel:
    """A model the actor may use (of `provider` when given). Raises ModelNotFoundError."""
    qs = model_list(actor=actor)
    if provider is not None:
        qs = qs.filter(provider=provider)
    model = qs.filter(pk=model_id).first()
    if model is None:
        raise ModelNotFoundError()
    return model


def usable_model(*, workspace_id: uuid.UUID, model_id: uuid.UUID) -> ProviderModel:
    """A model of the workspace's providers or of the platform's, whatever its kind or
    state (callers check those). Raises ModelNotFoundError for any other."""
    model = (
        ProviderModel.objects.select_related("provider")
        .filter(Q(provider__workspace_id=workspace_id) | Q(provider__workspace__isnull=True))
        .filter(pk=model_id)
        .first()
    )
    if model is None:
        raise ModelNotFoundError()
    return model


@dataclass(frozen=True)
class EffectiveDefault:
    kind: str
    model: ProviderModel | None
    source: str  # "workspace" | "platform" | "none"


def default_models(*, actor: Actor) -> list[EffectiveDefault]:
    """The default model of each kind for the actor's workspace, with where it comes from."""
    rows = DefaultModel.objects.select_related("model__provider").filter(
        Q(workspace_id=actor.workspace_id) | Q(workspace__isnull=True)
    )
    found: dict[tuple[str, str], ProviderModel] = {}
    for row in rows:
        found[(row.kind, "workspace" if row.workspace_id else "platform")] = row.model
    result = []
    for kind in ModelKind.values:
        for source in ("workspace", "platform"):
            if (kind, source) in found:
                result.append(EffectiveDefault(kind, found[(kind, source)], source))
                break
        else:
            result.append(EffectiveDefault(kind, None, "none"))
    return result


# --- usage -------------------------------------------------------------------------------

GROUP_FIELDS = {
    "model": "model_id",
    "agent": "agent_id",
    "user": "user_id",
    "key": "api_key_id",
}

# How apps to the right of providers name their ids in usage groups: `agents` registers
# "agent" in its AppConfig.ready (providers may not import agents).
UsageLabeller = Callable[[list[Any]], dict[Any, str]]
USAGE_GROUP_LABELLERS: dict[str, UsageLabeller] = {}


def usage_records(
    *,
    actor: Actor,
    start: dt.date | None = None,
    end: dt.date | None = None,
    model_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
) -> QuerySet[UsageRecord]:
    """Usage rows of the workspace between `start` and `end` (inclusive dates, UTC).
    Admins see everyone's; other members only their own calls."""
    qs = UsageRecord.objects.filter(workspace_id=actor.workspace_id)
    if not actor.has_role(Role.ADMIN):
        qs = qs.filter(user=actor.user)
    if start is not None:
        qs = qs.filter(created_at__date__gte=start)
    if end is not None:
        qs = qs.filter(created_at__date__lte=end)
    if model_id is not None:
        qs = qs.filter(model_id=model_id)
    if agent_id is not None:
        qs = qs.filter(agent_id=agent_id)
    return qs


_SUMS: dict[str, Any] = {
    "calls": Count("id"),
    "failed": Count("id", filter=~Q(outcome="ok")),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cost": Sum("cost"),
}


def _clean(row: Any) -> dict[str, Any]:
    return {
        "calls": row["calls"] or 0,
        "failed": row["failed"] or 0,
        "input_tokens": row["input_tokens"] or 0,
        "output_tokens": row["output_tokens"] or 0,
        "cost": row["cost"] or Decimal("0"),
    }


def usage_summary(*, records: QuerySet[UsageRecord], group_by: str | None) -> dict[str, Any]:
    """Totals, a per-day series and (with `group_by` in model/agent/user/key) groups."""
    totals = _clean(records.aggregate(**_SUMS))
    series = [
        {"date": row["day"], **_clean(row)}
        for row in records.annotate(day=TruncDate("created_at"))
        .order_by()
        .values("day")
        .annotate(**_SUMS)
        .order_by("day")
    ]
    groups: list[dict[str, Any]] = []
    if group_by:
        column = GROUP_FIELDS[group_by]
        rows = list(records.order_by().values(column).annotate(**_SUMS).order_by("-cost", column))
        labels = _group_labels(group_by, [row[column] for row in rows], records=records)
        groups = [
            {
                "key": str(row[column]) if row[column] is not None else None,
                "label": labels.get(row[column], "" if row[column] is None else str(row[column])),
                **_clean(row),
            }
            for row in rows
        ]
    return {"totals": totals, "series": series, "groups": groups}


def _group_labels(
    group_by: str, keys: list[Any], *, records: QuerySet[UsageRecord]
) -> dict[Any, str]:
    """Names for the group keys: a model's `provider/name`, an agent's name, a user's
    email, a key's name. A model deleted since (key null) is named from the rows."""
    present = [k for k in keys if k is not None]
    if group_by == "model":
        labels: dict[Any, str] = {
            m.pk: f"{m.provider.name}/{m.name}"
            for m in ProviderModel.objects.select_related("provider").filter(pk__in=present)
        }
        if None in keys:
            names = sorted(
                {
                    f"{provider}/{name}"
                    for provider, name in records.filter(model__isnull=True)
                    .order_by()
                    .values_list("provider_name", "model_name")
                    .distinct()
                }
            )
            labels[None] = ", ".join(names) + " (deleted)"
        return labels
    if group_by in USAGE_GROUP_LABELLERS:
        return USAGE_GROUP_LABELLERS[group_by](present)
    if group_by == "user":
        from apps.users.models import User

        return {u.pk: u.email for u in User.objects.filter(pk__in=present)}
    if group_by == "key":
        from apps.users.models import ApiKey

        return {k.pk: k.name for k in ApiKey.objects.filter(pk__in=present)}
    return {}


CSV_COLUMNS = [
    "created_at",
    "model",
    "provider",
    "kind",
    "user_id",
    "api_key_id",
    "agent_id",
    "run_id",
    "input_tokens",
    "output_tokens",
    "tokens_estimated",
    "cost",
    "latency_ms",
    "outcome",
    "error_code",
]


def usage_csv_rows(*, records: QuerySet[UsageRecord]) -> Iterator[list[str]]:
    """One CSV row per call (header first), oldest first, streamed from the database."""
    yield CSV_COLUMNS
    for row in records.order_by("created_at", "id").iterator(chunk_size=1000):
        yield [
            row.created_at.isoformat(),
            row.model_name,
            row.provider_name,
            row.kind,
            str(row.user_id or ""),
            str(row.api_key_id or ""),
            str(row.agent_id or ""),
            str(row.run_id or ""),
            str(row.input_tokens),
            str(row.output_tokens),
            "true" if row.tokens_estimated else "false",
            str(row.cost),
            str(row.latency_ms),
            row.outcome,
            row.error_code,
        ]
