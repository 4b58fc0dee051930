from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.files.choices import FileOrigin, ParseStatus
from apps.files.models import File
from apps.files.selectors import file_download_token


class FileSerializer(serializers.ModelSerializer):
    content_url = serializers.SerializerMethodField(
        help_text="Authenticated download of the bytes (GET, same credentials)."
    )
    download_url = serializers.SerializerMethodField(
        help_text="A signed download link that needs no credentials, valid "
        "FILES_DOWNLOAD_URL_SECONDS (default 300 s) from this response."
    )
    parse_status = serializers.ChoiceField(
        source="status",
        choices=ParseStatus.choices,
        read_only=True,
        help_text="Documents: pending -> processing -> ready | failed; others: none.",
    )
    parse_error = serializers.CharField(
        source="error_message", read_only=True, help_text="Why the parse failed."
    )

    class Meta:
        model = File
        fields = [
            "id",
            "name",
            "path",
            "origin",
            "conversation_id",
            "content_type",
            "kind",
            "size",
            "sha256",
            "parse_status",
            "parse_error",
            "content_url",
            "download_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_content_url(self, obj: File) -> str:
        return reverse("file-content", kwargs={"file_id": obj.id})

    @extend_schema_field(serializers.CharField())
    def get_download_url(self, obj: File) -> str:
        return reverse("file-download", kwargs={"token": file_download_token(file=obj)})


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The file (multipart/form-data).")


class FileListQuerySerializer(serializers.Serializer):
    conversation_id = serializers.UUIDField(required=False)
    origin = serializers.ChoiceField(choices=FileOrigin.choices, required=False)
