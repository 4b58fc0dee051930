import uuid
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.api.downloads import streaming_body
from apps.core.api.schema import error_doc
from apps.files import selectors, services
from apps.files.api.serializers import (
    FileListQuerySerializer,
    FileSerializer,
    FileUploadSerializer,
)
from apps.files.models import File
from apps.users.actors import get_actor

TAGS = ["files"]
BINARY = {(200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY)}


STREAM_CHUNK_BYTES = 256 * 1024


def _chunks(handle: Any) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(STREAM_CHUNK_BYTES):
            yield chunk


def _stream(request: Request, file: File) -> StreamingHttpResponse:
    """The file's bytes from the storage, streamed in chunks, as an attachment (never
    rendered inline by the browser: an uploaded HTML or SVG file cannot run in the
    platform's origin)."""
    handle = services.files_storage().open(file.storage_key, "rb")
    response = StreamingHttpResponse(
        streaming_body(request._request, _chunks(handle)), content_type=file.content_type
    )
    response["Content-Length"] = str(file.size)
    response["Content-Disposition"] = content_disposition_header(True, file.name) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"
    return response


class FileListView(ApiView):
    scope_area = "conversations"
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="files_list",
        parameters=[FileListQuerySerializer],
        responses=FileSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        """Your files in this workspace, newest first: uploads, and the files agents wrote
        in your conversations' file workspaces (`origin=agent`)."""
        query = FileListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        files = selectors.file_list(actor=get_actor(request), **query.validated_data)
        return self.paginate(request, files, lambda page: FileSerializer(page, many=True).data)

    @extend_schema(
        operation_id="files_upload",
        request={"multipart/form-data": FileUploadSerializer},
        responses={
            201: FileSerializer,
            413: error_doc(
                "The file, the request or the workspace's storage is over its limit "
                "(`file_too_large`, `payload_too_large`, `storage_quota_exceeded`)."
            ),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        """Upload one file. Its type is sniffed from the bytes; a document (text,
        Markdown, HTML, PDF, DOCX, CSV, JSON) is then read by the worker
        (`parse_status` pending -> ready | failed)."""
        actor = get_actor(request)
        form = FileUploadSerializer(data={"file": request.FILES.get("file")})
        form.is_valid(raise_exception=True)
        upload: Any = form.validated_data["file"]
        file = services.file_upload(
            actor=actor,
            name=upload.name or "file",
            data=upload.read(),
            declared_type=upload.content_type or "",
        )
        return Response(FileSerializer(file).data, status=201)


class FileDetailView(ApiView):
    scope_area = "conversations"

    @extend_schema(operation_id="files_get", responses=FileSerializer, tags=TAGS)
    def get(self, request: Request, file_id: uuid.UUID) -> Response:
        file = selectors.access_file(actor=get_actor(request), file_id=file_id)
        return Response(FileSerializer(file).data)

    @extend_schema(operation_id="files_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, file_id: uuid.UUID) -> Response:
        """Delete the file and its stored bytes."""
        actor = get_actor(request)
        services.file_delete(actor=actor, file=selectors.access_file(actor=actor, file_id=file_id))
        return Response(status=204)


class FileContentView(ApiView):
    scope_area = "conversations"

    @extend_schema(operation_id="files_content", responses=BINARY, tags=TAGS)
    def get(self, request: Request, file_id: uuid.UUID) -> StreamingHttpResponse:
        """The file's bytes (Content-Disposition: attachment)."""
        return _stream(request, selectors.access_file(actor=get_actor(request), file_id=file_id))


class FileDownloadView(ApiView):
    """A signed download link (`download_url` of a file): no credentials needed while
    the link is valid."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="files_download", responses=BINARY, tags=TAGS)
    def get(self, request: Request, token: str) -> StreamingHttpResponse:
        return _stream(request, selectors.file_from_download_token(token=token))
