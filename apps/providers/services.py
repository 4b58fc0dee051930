"""Writes of the providers app, and the model runtime (re-exported from `runtime`).

Runtime (what other apps call):
    chat_stream, chat_complete, embed_texts, aembed_texts, rerank, arerank, model_info
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from apps.core.exceptions import ValidationFailed
from apps.core.outbound import check_url
from apps.providers import local_models
from apps.providers.adapters import ChatRequest, Endpoint, make_adapter, share_clients_on_this_loop
from apps.providers.choices import Capability, ModelKind, ProviderKind, UsageOutcome
from apps.providers.exceptions import (
    ModelInUse,
    ModelNotFoundError,
    ProviderError,
    ProviderInUse,
)
from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel
from apps.providers.runtime import (
    Target,
    aembed_texts,
    amodel_info,
    arerank,
    chat_complete,
    chat_stream,
    embed_texts,
    model_info,
    prefetch_model,
    record_usage,
    remember_resolutions,
    rerank,
    target_for,
)
from apps.providers.types import TextDelta, ToolCallRequest, Usage, UsageContext
from apps.users.actors import Actor
from apps.users.choices import CredentialKind
from apps.users.models import User, Workspace

__all__ = [
    "aembed_texts",
    "amodel_info",
    "arerank",
    "chat_complete",
    "chat_stream",
    "default_model_set",
    "embed_texts",
    "model_create",
    "model_delete",
    "model_info",
    "model_update",
    "prefetch_model",
    "provider_create",
    "provider_delete",
    "provider_key_add",
    "provider_key_remove",
    "provider_models_in_use",
    "provider_probe_capabilities",
    "provider_update",
    "provider_upstream_models",
    "provider_verify",
    "remember_resolutions",
    "rerank",
    "usage_context",
]


def usage_context(
    *, actor: Actor, agent_id: uuid.UUID | None = None, run_id: uuid.UUID | None = None
) -> UsageContext:
    """The UsageContext of a call made for `actor` (its user, and its API key if the
    request came with one)."""
    api_key_id = None
    if actor.credential.kind == CredentialKind.API_KEY and actor.credential.pk:
        api_key_id = uuid.UUID(actor.credential.pk)
    return UsageContext(
        workspace_id=actor.workspace_id,
        user_id=actor.user.pk,
        api_key_id=api_key_id,
        agent_id=agent_id,
        run_id=run_id,
    )


def _validate_base_url(*, kind: str, base_url: str) -> None:
    """An empty base URL means the vendor's official endpoint; anything else is checked."""
    if base_url:
        check_url(base_url, field="base_url")


def _last4(secret: str) -> str:
    return secret[-4:] if len(secret) >= 12 else ""


def provider_create(
    *,
    workspace: Workspace | None,
    actor: User | None,
    name: str,
    kind: str,
    base_url: str = "",
    api_keys: Sequence[str] = (),
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    max_retries: int = 2,
    is_enabled: bool = True,
) -> Provider:
    """Create a provider (workspace None: platform-wide) with its keys. Raises
    OutboundBlocked for a base URL the guard refuses, ValidationFailed for a taken name."""
    if kind == ProviderKind.LOCAL:
        _check_local_provider(base_url=base_url, api_keys=api_keys)
    if base_url:
        _validate_base_url(kind=kind, base_url=base_url)
    with transaction.atomic():
        if Provider.objects.filter(workspace=workspace, name=name).exists():
            raise ValidationFailed("A provider with this name exists.", field="name")
        provider = Provider.objects.create(
            workspace=workspace,
            name=name,
            kind=kind,
            base_url=base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_retries=max_retries,
            is_enabled=is_enabled,
            created_by=actor,
        )
        for secret in api_keys:
            provider_key_add(provider=provider, secret=secret)
    return provider


def provider_update(*, provider: Provider, **changes: Any) -> Provider:
    """Change a provider's fields (`api_keys` replaces every key). Re-checks a new base URL."""
    api_keys = changes.pop("api_keys", None)
    if changes.get("kind", provider.kind) != provider.kind:
        for model in provider.models.all():
            _check_kind_supported(provider_kind=changes["kind"], model_kind=model.kind)
    if changes.get("kind", provider.kind) == ProviderKind.LOCAL:
        _check_local_provider(
            base_url=changes.get("base_url", provider.base_url), api_keys=api_keys or ()
        )
    if changes.get("base_url"):
        _validate_base_url(kind=changes.get("kind", provider.kind), base_url=changes["base_url"])
    with transaction.atomic():
        name = changes.get("name")
        if (
            name is not None
            and Provider.objects.filter(workspace=provider.workspace, name=name)
            .exclude(pk=provider.pk)
            .exists()
        ):
            raise ValidationFailed("A provider with this name exists.", field="name")
        for field_name, value in changes.items():
            setattr(provider, field_name, value)
        provider.save()
        if api_keys is not None:
            provider.keys.all().delete()
            for secret in api_keys:
                provider_key_add(provider=provider, secret=secret)
    return provider


def provider_key_add(*, provider: Provider, secret: str, label: str = "") -> ProviderKey:
    """Add one API key (stored encrypted; only its last 4 characters are ever shown)."""
    secret = secret.strip()
    if not secret:
        raise ValidationFailed("An API key cannot be empty.", field="api_keys")
    return ProviderKey.objects.create(
        provider=provider, secret=secret, last4=_last4(secret), label=label
    )


def provider_key_remove(*, key: ProviderKey) -> None:
    key.delete()


def _model_references(model_ids: Sequence[uuid.UUID]) -> list[tuple[Any, str]]:
    """(related model, field name, count) of every foreign key to these models, except our
    own bookkeeping (defaults cascade; usage rows keep their model name)."""
    refs: list[tuple[Any, str]] = []
    for relation in ProviderModel._meta.related_objects:
        related = relation.related_model
        if related in (DefaultModel,) or related._meta.app_label == "providers":
            continue
        field = relation.field
        if not getattr(field, "many_to_one", False) and not getattr(field, "one_to_one", False):
            continue
        refs.append((related, field.name))
    return refs


def provider_models_in_use(*, model_ids: Sequence[uuid.UUID]) -> dict[str, int]:
    """How many rows of other apps (agents, knowledge bases, ...) reference these models,
    by `<app_label>.<model>`. Empty when nothing does."""
    usage: dict[str, int] = {}
    for related, field_name in _model_references(model_ids):
        count = related._default_manager.filter(**{f"{field_name}__in": model_ids}).count()
        if count:
            label = related._meta.label_lower
            usage[label] = usage.get(label, 0) + count
    return usage


def _reassign(*, model_ids: Sequence[uuid.UUID], kind: str, to: ProviderModel | None) -> None:
    if to is None:
        return
    if to.kind != kind:
        raise ValidationFailed(f"The replacement must be a {kind} model.", field="reassign_to")
    if kind == ModelKind.EMBEDDING:
        sizes = set(
            ProviderModel.objects.filter(pk__in=model_ids, kind=kind).values_list(
                "dimensions", flat=True
            )
        )
        if sizes - {to.dimensions}:
            raise ValidationFailed(
                "The replacement embedding model must have the same dimensions (stored "
                "vectors would not match).",
                field="reassign_to",
            )
    for related, field_name in _model_references(model_ids):
        related._default_manager.filter(
            **{f"{field_name}__in": model_ids, f"{field_name}__kind": kind}
        ).update(**{field_name: to})


def _describe(usage: dict[str, int]) -> str:
    return ", ".join(f"{count} {label}" for label, count in sorted(usage.items()))


def provider_delete(
    *,
    provider: Provider,
    reassign_chat_to: ProviderModel | None = None,
    reassign_embedding_to: ProviderModel | None = None,
    reassign_rerank_to: ProviderModel | None = None,
) -> None:
    """Delete a provider and its models. Refused (ProviderInUse, 409) while other objects
    use its models, unless replacements are given: then those objects are moved to them
    (an explicit choice) before the delete."""
    model_ids = list(provider.models.values_list("pk", flat=True))
    for replacement in (reassign_chat_to, reassign_embedding_to, reassign_rerank_to):
        if replacement is not None and replacement.pk in model_ids:
            raise ValidationFailed(
                "The replacement model belongs to the provider being deleted.",
                field="reassign_to",
            )
    with transaction.atomic():
        _reassign(model_ids=model_ids, kind=ModelKind.CHAT, to=reassign_chat_to)
        _reassign(model_ids=model_ids, kind=ModelKind.EMBEDDING, to=reassign_embedding_to)
        _reassign(model_ids=model_ids, kind=ModelKind.RERANK, to=reassign_rerank_to)
        in_use = provider_models_in_use(model_ids=model_ids)
        if in_use:
            raise ProviderInUse(
                f"This provider's models are used by {_describe(in_use)}. Reassign them "
                "(reassign_chat_to / reassign_embedding_to / reassign_rerank_to) or change "
                "those objects first."
            )
        try:
            provider.delete()
        except (ProtectedError, RestrictedError) as exc:
            raise ProviderInUse() from exc


def model_create(
    *,
    provider: Provider,
    name: str,
    kind: str = ModelKind.CHAT,
    display_name: str = "",
    context_window: int | None = None,
    max_output_tokens: int | None = None,
    capabilities: Sequence[str] = (),
    dimensions: int | None = None,
    input_price_per_million: Decimal = Decimal("0"),
    output_price_per_million: Decimal = Decimal("0"),
    fallback_model_ids: Sequence[uuid.UUID] = (),
    is_enabled: bool = True,
) -> ProviderModel:
    """Add a model to a provider. Raises ValidationFailed (duplicate, bad capability or
    fallback, a kind the provider does not offer, an unknown local model)."""
    _check_kind_supported(provider_kind=provider.kind, model_kind=kind)
    if provider.kind == ProviderKind.LOCAL:
        dimensions = _check_local_model(name=name, dimensions=dimensions)
    _check_capabilities(capabilities)
    fallbacks = _check_fallbacks(provider=provider, kind=kind, ids=fallback_model_ids, self_id=None)
    try:
        with transaction.atomic():
            return ProviderModel.objects.create(
                provider=provider,
                name=name,
                kind=kind,
                display_name=display_name,
                context_window=context_window,
                max_output_tokens=max_output_tokens,
                capabilities=sorted(set(capabilities)),
                dimensions=dimensions,
                input_price_per_million=input_price_per_million,
                output_price_per_million=output_price_per_million,
                fallback_model_ids=fallbacks,
                is_enabled=is_enabled,
            )
    except IntegrityError as exc:
        raise ValidationFailed(
            f"This provider already has a {kind} model named {name!r}.", field="name"
        ) from exc


def model_update(*, model: ProviderModel, **changes: Any) -> ProviderModel:
    """Change a model's fields. Same validation as `model_create`."""
    if "kind" in changes:
        _check_kind_supported(provider_kind=model.provider.kind, model_kind=changes["kind"])
    if model.provider.kind == ProviderKind.LOCAL and ("name" in changes or "dimensions" in changes):
        changes["dimensions"] = _check_local_model(
            name=changes.get("name", model.name),
            dimensions=changes.get("dimensions", model.dimensions),
        )
    if "capabilities" in changes:
        _check_capabilities(changes["capabilities"])
        changes["capabilities"] = sorted(set(changes["capabilities"]))
    if "fallback_model_ids" in changes:
        changes["fallback_model_ids"] = _check_fallbacks(
            provider=model.provider,
            kind=changes.get("kind", model.kind),
            ids=changes["fallback_model_ids"],
            self_id=model.pk,
        )
    for field_name, value in changes.items():
        setattr(model, field_name, value)
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError as exc:
        raise ValidationFailed(
            "This provider already has a model with this name.", field="name"
        ) from exc
    return model


def model_delete(*, model: ProviderModel, reassign_to: ProviderModel | None = None) -> None:
    """Delete a model; refused (ModelInUse, 409) while used, unless `reassign_to` is given."""
    if reassign_to is not None and reassign_to.pk == model.pk:
        raise ValidationFailed("A model cannot replace itself.", field="reassign_to")
    with transaction.atomic():
        _reassign(model_ids=[model.pk], kind=model.kind, to=reassign_to)
        in_use = provider_models_in_use(model_ids=[model.pk])
        if in_use:
            raise ModelInUse(f"This model is used by {_describe(in_use)}.")
        try:
            model.delete()
        except (ProtectedError, RestrictedError) as exc:
            raise ModelInUse() from exc


def _check_kind_supported(*, provider_kind: str, model_kind: str) -> None:
    """Anthropic has no rerank endpoint: a rerank model there could never answer. A local
    provider serves embedding models only."""
    if provider_kind == ProviderKind.LOCAL and model_kind != ModelKind.EMBEDDING:
        raise ValidationFailed("A local provider serves embedding models only.", field="kind")
    if provider_kind == ProviderKind.ANTHROPIC and model_kind == ModelKind.RERANK:
        raise ValidationFailed(
            "Anthropic providers have no rerank endpoint; add rerank models to an "
            "OpenAI-compatible provider (Cohere, Jina, vLLM, Xinference, ...).",
            field="kind",
        )


def _check_local_model(*, name: str, dimensions: int | None) -> int:
    """The dimensions of local model `name` (which must be one the platform runs and be
    installed). Raises ValidationFailed naming the field."""
    if name not in local_models.LOCAL_MODELS:
        raise ValidationFailed(
            f"{name!r} is not a local model; available: {', '.join(local_models.LOCAL_MODELS)}.",
            field="name",
        )
    if not local_models.available():
        raise ValidationFailed(local_models.INSTALL_HINT, field="name")
    size = local_models.LOCAL_MODELS[name]
    if dimensions not in (None, size):
        raise ValidationFailed(f"{name} has {size} dimensions.", field="dimensions")
    return size


def _check_local_provider(*, base_url: str, api_keys: Sequence[str]) -> None:
    if base_url:
        raise ValidationFailed("A local provider has no base URL.", field="base_url")
    if api_keys:
        raise ValidationFailed("A local provider takes no API key.", field="api_keys")


def _check_capabilities(capabilities: Sequence[str]) -> None:
    unknown = set(capabilities) - set(Capability.values)
    if unknown:
        raise ValidationFailed(
            f"Unknown capabilities: {', '.join(sorted(unknown))}.", field="capabilities"
        )


def _check_fallbacks(
    *, provider: Provider, kind: str, ids: Sequence[uuid.UUID], self_id: uuid.UUID | None
) -> list[str]:
    result: list[str] = []
    for raw in ids:
        fallback_id = uuid.UUID(str(raw))
        if fallback_id == self_id:
            raise ValidationFailed(
                "A model cannot fall back to itself.", field="fallback_model_ids"
            )
        visible = ProviderModel.objects.filter(pk=fallback_id, kind=kind)
        if provider.workspace_id is None:
            visible = visible.filter(provider__workspace__isnull=True)
        else:
            visible = visible.filter(
                provider__workspace_id__in=[provider.workspace_id]
            ) | visible.filter(provider__workspace__isnull=True)
        if not visible.exists():
            raise ValidationFailed(
                f"Fallback {fallback_id} is not a {kind} model you can use.",
                field="fallback_model_ids",
            )
        if str(fallback_id) not in result:
            result.append(str(fallback_id))
    return result


def default_model_set(
    *, workspace: Workspace | None, kind: str, model: ProviderModel | None
) -> DefaultModel | None:
    """Set (or clear, with None) the default `kind` model of a workspace or, with no
    workspace, of the platform. Idempotent."""
    if model is not None and model.kind != kind:
        raise ValidationFailed(f"{model.name} is not a {kind} model.", field=f"{kind}_model_id")
    with transaction.atomic():
        DefaultModel.objects.filter(workspace=workspace, kind=kind).delete()
        if model is None:
            return None
        return DefaultModel.objects.create(workspace=workspace, kind=kind, model=model)


# --- round trips (verify, probe, upstream models) ---------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    latency_ms: int
    model: str
    error_code: str = ""
    error_message: str = ""


def _first_target(provider: Provider, model: ProviderModel | None) -> Target:
    chosen = model or provider.models.filter(is_enabled=True).order_by("kind", "created_at").first()
    if chosen is None:
        raise ModelNotFoundError("Add a model to this provider first.")
    return target_for(chosen)


def _record_check(
    *, target: Target, usage: UsageContext | None, started: float, error: ProviderError | None
) -> None:
    """Usage row of a verify/probe call (counted locally: these are tiny)."""
    if usage is None:
        return
    record_usage(
        usage_ctx=usage,
        target=target,
        usage=Usage(input_tokens=8, output_tokens=0 if error else 1),
        estimated=True,
        started=started,
        outcome=UsageOutcome.ERROR if error else UsageOutcome.OK,
        error_code=error.code if error else "",
        used_key_id=target.keys[0][0],
    )


def provider_verify(
    *, provider: Provider, model: ProviderModel | None = None, usage: UsageContext | None = None
) -> VerifyResult:
    """One real round trip to the provider (a one-token chat, or an embedding) with its
    first key. Never raises for an upstream failure: the result carries the error code.
    Records a usage row when `usage` is given."""
    target = _first_target(provider, model)
    started = time.monotonic()

    async def run() -> None:
        adapter = make_adapter(target.endpoint(target.keys[0][1]))
        try:
            if target.kind == ModelKind.EMBEDDING:
                await adapter.embed(model=target.model_name, texts=["ping"], dimensions=None)
            elif target.kind == ModelKind.RERANK:
                await adapter.rerank(
                    model=target.model_name, query="ping", documents=["ping"], top_n=1
                )
            else:
                request = ChatRequest(
                    model=target.model_name,
                    messages=[{"role": "user", "content": "Reply with: ok"}],
                    max_tokens=1 if provider.kind != ProviderKind.ANTHROPIC else 8,
                )
                async for _ in adapter.stream_chat(request):
                    pass
        finally:
            await adapter.aclose()

    try:
        async_to_sync(run)()
    except ProviderError as error:
        _record_check(target=target, usage=usage, started=started, error=error)
        return VerifyResult(
            ok=False,
            latency_ms=int((time.monotonic() - started) * 1000),
            model=target.model_name,
            error_code=error.code,
            error_message=error.message,
        )
    _record_check(target=target, usage=usage, started=started, error=None)
    return VerifyResult(
        ok=True, latency_ms=int((time.monotonic() - started) * 1000), model=target.model_name
    )


_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Returns the current time. Call it to learn the time.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}
# A 1x1 transparent PNG.
_PROBE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
_PROBE_IMAGE = "data:image/png;base64," + _PROBE_PNG


def provider_probe_capabilities(
    *, model: ProviderModel, usage: UsageContext | None = None, save: bool = True
) -> dict[str, bool]:
    """Ask the model three small questions: does it call a tool when asked, accept an
    image, answer in JSON mode. Saves what it learned in `capabilities` (keeping
    `reasoning`, which cannot be probed cheaply)."""
    provider = model.provider
    target = target_for(model)

    async def ask(**kwargs: Any) -> tuple[bool, list[Any]]:
        adapter = make_adapter(target.endpoint(target.keys[0][1]))
        events: list[Any] = []
        started = time.monotonic()
        failure: ProviderError | None = None
        try:
            async for event in adapter.stream_chat(ChatRequest(model=model.name, **kwargs)):
                events.append(event)
        except ProviderError as error:
            failure = error
        finally:
            await adapter.aclose()
        await sync_to_async(_record_check)(
            target=target, usage=usage, started=started, error=failure
        )
        return failure is None, events

    async def run() -> dict[str, bool]:
        ok, events = await ask(
            messages=[{"role": "user", "content": "What time is it? Use the tool."}],
            tools=[_PROBE_TOOL],
            max_tokens=64,
        )
        tools_ok = ok and any(isinstance(e, ToolCallRequest) for e in events)
        ok, _ = await ask(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Describe this image in one word."},
                        {"type": "image_url", "image_url": {"url": _PROBE_IMAGE}},
                    ],
                }
            ],
            max_tokens=8,
        )
        vision_ok = ok
        json_ok = False
        if provider.kind == ProviderKind.OPENAI:
            ok, events = await ask(
                messages=[{"role": "user", "content": 'Answer in JSON: {"ok": true}'}],
                max_tokens=16,
                json_mode=True,
            )
            json_ok = ok and any(isinstance(e, TextDelta) for e in events)
        return {"tools": tools_ok, "vision": vision_ok, "json_mode": json_ok}

    found = async_to_sync(run)()
    if save:
        kept = {c for c in model.capabilities or [] if c == Capability.REASONING}
        model.capabilities = sorted(kept | {name for name, ok in found.items() if ok})
        model.save(update_fields=["capabilities", "updated_at"])
    return found


def provider_upstream_models(*, provider: Provider) -> list[str]:
    """The model ids the upstream lists. Raises ProviderError."""
    keys = list(provider.keys.filter(is_enabled=True).order_by("created_at")[:1])
    endpoint = Endpoint(
        kind=provider.kind,
        base_url=provider.base_url,
        api_key=keys[0].secret if keys else "",
        connect_timeout=provider.connect_timeout,
        read_timeout=provider.read_timeout,
    )

    async def run() -> list[str]:
        adapter = make_adapter(endpoint)
        try:
            return await adapter.list_models()
        finally:
            await adapter.aclose()

    return async_to_sync(run)()


def model_clients_share_this_loop() -> None:
    """Declare the running event loop long-lived (a server's): model calls made on it share
    SDK clients and their keep-alive connections. Call it on that loop."""
    share_clients_on_this_loop()
