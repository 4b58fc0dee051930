from decimal import Decimal

import factory

from apps.providers.choices import Capability, ModelKind, ProviderKind
from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel
from apps.providers.scripted import DEFAULT_DIMENSIONS


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = ProviderKind.OPENAI
    base_url = "https://api.example.com/v1"


class ProviderKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderKey

    provider = factory.SubFactory(ProviderFactory)
    secret = factory.Sequence(lambda n: f"sk-test-key-{n:08d}")
    last4 = factory.LazyAttribute(lambda o: o.secret[-4:])


class ProviderModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProviderModel

    provider = factory.SubFactory(ProviderFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    kind = ModelKind.CHAT
    context_window = 128_000
    max_output_tokens = 4096
    capabilities = factory.LazyFunction(lambda: [Capability.TOOLS])
    input_price_per_million = Decimal("1")
    output_price_per_million = Decimal("2")


def make_scripted_provider(
    *,
    workspace,
    scripted_llm,
    set_defaults=True,
    kind=ProviderKind.OPENAI,
    api_keys=("sk-scripted-key-0001",),
    max_retries=2,
    read_timeout=10.0,
):
    """A provider of `workspace` (None: platform) pointing at the scripted server, with a
    chat model ("scripted-chat": tools, vision, json_mode, reasoning; prices 1 and 2 per
    million) and an embedding model ("scripted-embed", DEFAULT_DIMENSIONS dims), made the
    defaults of the workspace (or of the platform). Loopback must be allow-listed: the
    `scripted_llm` fixture does it."""
    base_url = scripted_llm.root_url if kind == ProviderKind.ANTHROPIC else scripted_llm.base_url
    provider = Provider.objects.create(
        workspace=workspace,
        name=f"scripted-{kind}-{Provider.objects.count()}",
        kind=kind,
        base_url=base_url,
        max_retries=max_retries,
        read_timeout=read_timeout,
        connect_timeout=5.0,
    )
    for secret in api_keys:
        ProviderKey.objects.create(provider=provider, secret=secret, last4=secret[-4:])
    chat = ProviderModel.objects.create(
        provider=provider,
        name="scripted-chat",
        kind=ModelKind.CHAT,
        context_window=32_000,
        max_output_tokens=4096,
        capabilities=sorted(Capability.values),
        input_price_per_million=Decimal("1"),
        output_price_per_million=Decimal("2"),
    )
    embedding = ProviderModel.objects.create(
        provider=provider,
        name="scripted-embed",
        kind=ModelKind.EMBEDDING,
        dimensions=DEFAULT_DIMENSIONS,
        context_window=8192,
        input_price_per_million=Decimal("0.1"),
    )
    if set_defaults:
        for model in (chat, embedding):
            DefaultModel.objects.filter(workspace=workspace, kind=model.kind).delete()
            DefaultModel.objects.create(workspace=workspace, kind=model.kind, model=model)
    return provider, chat, embedding


def add_rerank_model(
    provider, *, name="scripted-rerank", price=Decimal("0.05"), make_default=False, **fields
):
    """A rerank model of `provider` (the scripted server answers `/v1/rerank` for any
    name), optionally the default rerank model of the provider's workspace."""
    model = ProviderModel.objects.create(
        provider=provider,
        name=name,
        kind=ModelKind.RERANK,
        context_window=8192,
        input_price_per_million=price,
        **fields,
    )
    if make_default:
        DefaultModel.objects.filter(workspace=provider.workspace, kind=ModelKind.RERANK).delete()
        DefaultModel.objects.create(
            workspace=provider.workspace, kind=ModelKind.RERANK, model=model
        )
    return model
