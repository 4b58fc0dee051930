from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.crypto import EncryptedTextField
from apps.core.models import BaseModel
from apps.providers.choices import ModelKind, ProviderKind, UsageOutcome


class Provider(BaseModel):
    """A model endpoint and its credentials: platform-wide (no workspace, managed by the
    operator) or owned by one workspace."""

    workspace = models.ForeignKey(
        "users.Workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="providers",
        help_text="Empty: a platform provider every workspace may use.",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    base_url = models.URLField(
        max_length=500, blank=True, help_text="Empty: the vendor's official endpoint."
    )
    is_enabled = models.BooleanField(default=True)
    connect_timeout = models.FloatField(default=10.0, help_text="Seconds to connect.")
    read_timeout = models.FloatField(
        default=60.0, help_text="Seconds to wait for the first byte and between chunks."
    )
    max_retries = models.PositiveSmallIntegerField(
        default=2, help_text="Retries of a 429/5xx/connection error before failing over."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=Q(workspace__isnull=False),
                name="provider_workspace_name_unique",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(workspace__isnull=True),
                name="provider_platform_name_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ProviderKey(BaseModel):
    """One API key of a provider (encrypted); a provider's keys are used in rotation."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="keys")
    secret = EncryptedTextField(help_text="Write-only.")
    last4 = models.CharField(max_length=4, blank=True, editable=False)
    label = models.CharField(max_length=100, blank=True)
    is_enabled = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "provider API key"

    def __str__(self) -> str:
        return f"{self.label or 'key'} (…{self.last4})"


class ProviderModel(BaseModel):
    """A model offered by a provider, with its limits, capabilities and prices."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The model id the upstream knows.")
    display_name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=ModelKind.choices, default=ModelKind.CHAT)
    is_enabled = models.BooleanField(default=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    capabilities = models.JSONField(
        default=list, blank=True, help_text='Any of "tools", "vision", "json_mode", "reasoning".'
    )
    dimensions = models.PositiveIntegerField(
        null=True, blank=True, help_text="Vector size (embedding models)."
    )
    input_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    output_price_per_million = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0")
    )
    fallback_model_ids = models.JSONField(
        default=list,
        blank=True,
        help_text="Ordered ids of models tried when this one fails with a retryable error.",
    )

    class Meta:
        ordering = ["provider__name", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "name", "kind"], name="provider_model_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"


class DefaultModel(BaseModel):
    """The default chat, embedding or rerank model of a workspace (or, without one, the
    platform)."""

    workspace = models.ForeignKey(
        "users.Workspace",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="default_models",
    )
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    model = models.ForeignKey(ProviderModel, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind"],
                condition=Q(workspace__isnull=False),
                name="default_model_workspace_unique",
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(workspace__isnull=True),
                name="default_model_platform_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"default {self.kind} of {self.workspace or 'platform'}"


class UsageRecord(BaseModel):
    """One model call (never one token): who, which model, tokens, cost, latency, outcome."""

    workspace = models.ForeignKey(
        "users.Workspace", on_delete=models.CASCADE, related_name="usage_records"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key_id = models.UUIDField(null=True, blank=True, db_index=True)
    agent_id = models.UUIDField(null=True, blank=True, db_index=True)
    run_id = models.UUIDField(null=True, blank=True, db_index=True)
    model = models.ForeignKey(
        ProviderModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=200)
    provider_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(
        default=False, help_text="Counted locally: the upstream reported no usage."
    )
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=16, choices=UsageOutcome.choices)
    error_code = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "created_at"], name="usage_ws_created")]

    def __str__(self) -> str:
        return f"{self.model_name} {self.input_tokens}+{self.output_tokens} ({self.outcome})"
