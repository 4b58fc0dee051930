"""Providers in the Django admin: the operator's platform providers (and every workspace's).
API keys are write-only here too: a new key is typed into a password field, never shown."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from unfold.admin import ModelAdmin, TabularInline

from apps.core.exceptions import ApplicationError
from apps.core.outbound import check_url
from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel, UsageRecord


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text="Empty: the vendor's official endpoint. Checked by the outbound guard.",
    )

    class Meta:
        model = Provider
        fields = [
            "workspace",
            "name",
            "kind",
            "base_url",
            "is_enabled",
            "connect_timeout",
            "read_timeout",
            "max_retries",
            "created_by",
        ]

    def clean_base_url(self) -> str:
        url: str = self.cleaned_data.get("base_url") or ""
        if url:
            try:
                check_url(url, field="base_url")
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from exc
        return url


class ProviderKeyForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: type a key to set or replace it; it is never displayed.",
    )

    class Meta:
        model = ProviderKey
        fields = ["label", "is_enabled"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not self.instance.pk and not cleaned.get("new_secret"):
            raise forms.ValidationError("Type the API key.")
        return cleaned

    def save(self, commit: bool = True) -> ProviderKey:
        secret = self.cleaned_data.get("new_secret")
        if secret:
            self.instance.secret = secret
            self.instance.last4 = secret[-4:] if len(secret) >= 12 else ""
        return super().save(commit=commit)  # type: ignore[no-any-return]


class ProviderKeyInline(TabularInline):
    model = ProviderKey
    form = ProviderKeyForm
    extra = 0
    fields = ["label", "new_secret", "last4", "is_enabled", "last_used_at", "last_error_code"]
    readonly_fields = ["last4", "last_used_at", "last_error_code"]


class ProviderModelInline(TabularInline):
    model = ProviderModel
    extra = 0
    fields = [
        "name",
        "kind",
        "is_enabled",
        "context_window",
        "max_output_tokens",
        "capabilities",
        "dimensions",
        "input_price_per_million",
        "output_price_per_million",
        "fallback_model_ids",
    ]


@admin.register(Provider)
class ProviderAdmin(ModelAdmin):
    form = ProviderForm
    list_display = ["name", "kind", "workspace", "base_url", "is_enabled", "created_at"]
    list_filter = ["kind", "is_enabled", ("workspace", admin.EmptyFieldListFilter)]
    search_fields = ["name", "base_url", "workspace__name"]
    raw_id_fields = ["workspace", "created_by"]
    inlines = [ProviderKeyInline, ProviderModelInline]


@admin.register(ProviderModel)
class ProviderModelAdmin(ModelAdmin):
    list_display = ["name", "provider", "kind", "is_enabled", "context_window", "dimensions"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "provider__name"]
    raw_id_fields = ["provider"]


@admin.register(DefaultModel)
class DefaultModelAdmin(ModelAdmin):
    list_display = ["kind", "workspace", "model"]
    list_filter = ["kind", ("workspace", admin.EmptyFieldListFilter)]
    raw_id_fields = ["workspace", "model"]


@admin.register(UsageRecord)
class UsageRecordAdmin(ModelAdmin):
    list_display = [
        "created_at",
        "workspace",
        "model_name",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency_ms",
        "outcome",
    ]
    list_filter = ["outcome", "kind"]
    search_fields = ["model_name", "provider_name", "workspace__name"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
