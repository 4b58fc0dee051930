from typing import Any

from rest_framework import serializers

from apps.providers.choices import Capability, ModelKind, ProviderKind
from apps.providers.models import Provider, ProviderKey, ProviderModel


class ProviderKeySerializer(serializers.ModelSerializer):
    """A key as the API shows it: never the secret, its last four characters at most."""

    class Meta:
        model = ProviderKey
        fields = [
            "id",
            "label",
            "last4",
            "is_enabled",
            "last_used_at",
            "last_error_code",
            "last_error_at",
            "created_at",
        ]


class ProviderModelSerializer(serializers.ModelSerializer):
    provider_id = serializers.UUIDField(read_only=True)
    provider_name = serializers.CharField(source="provider.name", read_only=True)
    capabilities = serializers.ListField(child=serializers.CharField(), read_only=True)
    fallback_model_ids = serializers.ListField(child=serializers.UUIDField(), read_only=True)

    class Meta:
        model = ProviderModel
        fields = [
            "id",
            "provider_id",
            "provider_name",
            "name",
            "display_name",
            "kind",
            "is_enabled",
            "context_window",
            "max_output_tokens",
            "capabilities",
            "dimensions",
            "input_price_per_million",
            "output_price_per_million",
            "fallback_model_ids",
            "created_at",
            "updated_at",
        ]


class ProviderSerializer(serializers.ModelSerializer):
    scope = serializers.SerializerMethodField()
    keys = ProviderKeySerializer(many=True, read_only=True)
    models = ProviderModelSerializer(many=True, read_only=True)

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "scope",
            "base_url",
            "is_enabled",
            "connect_timeout",
            "read_timeout",
            "max_retries",
            "keys",
            "models",
            "created_at",
            "updated_at",
        ]

    def get_scope(self, obj: Provider) -> str:
        """ "workspace" (yours to change) or "platform" (managed by the operator)."""
        return "platform" if obj.workspace_id is None else "workspace"


class ProviderWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ProviderKind.choices)
    base_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="http(s) URL; empty: the vendor's official endpoint. Checked by the "
        "outbound guard (private addresses need an operator allow-list entry).",
    )
    api_keys = serializers.ListField(
        child=serializers.CharField(max_length=4000, trim_whitespace=True),
        required=False,
        max_length=20,
        write_only=True,
        help_text="Write-only. Replaces every key of the provider; used in rotation.",
    )
    is_enabled = serializers.BooleanField(required=False)
    connect_timeout = serializers.FloatField(min_value=0.5, max_value=120, required=False)
    read_timeout = serializers.FloatField(min_value=1, max_value=900, required=False)
    max_retries = serializers.IntegerField(min_value=0, max_value=10, required=False)


class ProviderKeyWriteSerializer(serializers.Serializer):
    secret = serializers.CharField(max_length=4000, write_only=True)
    label = serializers.CharField(  # type: ignore[assignment]
        max_length=100, required=False, allow_blank=True
    )


class ModelWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    display_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=ModelKind.choices, default=ModelKind.CHAT)
    is_enabled = serializers.BooleanField(required=False)
    context_window = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=Capability.choices), required=False
    )
    dimensions = serializers.IntegerField(
        min_value=1, max_value=16000, required=False, allow_null=True
    )
    input_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False
    )
    output_price_per_million = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False
    )
    fallback_model_ids = serializers.ListField(
        child=serializers.UUIDField(), required=False, max_length=10
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        embedding = attrs.get("kind") == ModelKind.EMBEDDING
        if embedding and not self.partial and not attrs.get("dimensions"):
            raise serializers.ValidationError(
                {"dimensions": "An embedding model needs its vector size."}
            )
        return attrs


class VerifySerializer(serializers.Serializer):
    model_id = serializers.UUIDField(
        required=False, help_text="The model to try (default: the provider's first)."
    )


class VerifyResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.IntegerField()
    model = serializers.CharField()
    error_code = serializers.CharField(allow_blank=True)
    error_message = serializers.CharField(allow_blank=True)


class CapabilitiesSerializer(serializers.Serializer):
    tools = serializers.BooleanField()
    vision = serializers.BooleanField()
    json_mode = serializers.BooleanField()
    model = ProviderModelSerializer()


class UpstreamModelsSerializer(serializers.Serializer):
    models = serializers.ListField(child=serializers.CharField())


class DefaultModelSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelKind.choices)
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["workspace", "platform", "none"]
    )
    model = ProviderModelSerializer(allow_null=True)


class DefaultModelsWriteSerializer(serializers.Serializer):
    chat_model_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="null: fall back to the platform default."
    )
    embedding_model_id = serializers.UUIDField(required=False, allow_null=True)
    rerank_model_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The rerank model a search uses when it asks for rerank without naming "
        "one (knowledge bases name theirs).",
    )


class ProviderDeleteQuerySerializer(serializers.Serializer):
    reassign_chat_to = serializers.UUIDField(required=False)
    reassign_embedding_to = serializers.UUIDField(required=False)
    reassign_rerank_to = serializers.UUIDField(required=False)


class ModelDeleteQuerySerializer(serializers.Serializer):
    reassign_to = serializers.UUIDField(required=False)


class ModelListQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ModelKind.choices, required=False)


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="First day (UTC), inclusive.")
    end = serializers.DateField(required=False, help_text="Last day (UTC), inclusive.")
    group_by = serializers.ChoiceField(choices=["model", "agent", "user", "key"], required=False)
    model_id = serializers.UUIDField(required=False)
    agent_id = serializers.UUIDField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": "end is before start."})
        return attrs


class UsageSumsSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Calls that failed or were cancelled.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)


class UsageDaySerializer(UsageSumsSerializer):
    date = serializers.DateField()


class UsageGroupSerializer(UsageSumsSerializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_blank=True)  # type: ignore[assignment]


class UsageSummarySerializer(serializers.Serializer):
    totals = UsageSumsSerializer()
    series = UsageDaySerializer(many=True)
    groups = UsageGroupSerializer(many=True)
