from rest_framework import serializers

from apps.core.models import SystemSettings
from apps.core.outbound import validate_allowlist_entry


class ComponentHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded"])
    components = ComponentHealthSerializer(many=True)


class SystemInfoSerializer(serializers.Serializer):
    version = serializers.CharField()
    features = serializers.ListField(child=serializers.CharField())
    allow_registration = serializers.BooleanField()
    database = serializers.CharField()


class SystemSettingsSerializer(serializers.ModelSerializer):
    outbound_allowed_hosts = serializers.ListField(
        child=serializers.CharField(max_length=255), max_length=100, required=False
    )

    class Meta:
        model = SystemSettings
        fields = ["allow_registration", "outbound_allowed_hosts", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate_outbound_allowed_hosts(self, value: list[str]) -> list[str]:
        for entry in value:
            validate_allowlist_entry(entry)
        return value
