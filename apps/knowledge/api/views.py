import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.api.fast import serialize_row, serialize_rows, validated_input, values_rows
from apps.core.exceptions import ValidationFailed
from apps.knowledge import selectors, services
from apps.knowledge.api.serializers import (
    BatchSerializer,
    ChunkCreateSerializer,
    ChunkSerializer,
    ChunkUpdateSerializer,
    CountSerializer,
    DocumentListQuerySerializer,
    DocumentSerializer,
    DocumentTextSerializer,
    DocumentUpdateSerializer,
    DocumentUploadSerializer,
    DocumentUrlSerializer,
    KnowledgeBaseSerializer,
    KnowledgeBaseWriteSerializer,
    SearchResultSerializer,
    SearchSerializer,
    UploadResultSerializer,
)
from apps.knowledge.choices import DocumentStatus
from apps.knowledge.models import Document, UploadBatch
from apps.knowledge.search import Filters
from apps.knowledge.services import IncomingFile
from apps.providers.types import UsageContext
from apps.users.actors import get_actor

TAGS = ["knowledge"]


def _kb_data(knowledge_base: Any) -> Any:
    return serialize_row(KnowledgeBaseSerializer, knowledge_base)


def _upload_data(batch: UploadBatch, documents: list[Document]) -> Any:
    progress = selectors.batch_progress(batch=batch)
    return {
        "batch": BatchSerializer(batch, context={"progress": progress}).data,
        "documents": DocumentSerializer(documents, many=True).data,
    }


class KnowledgeBaseListView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_bases_list",
        responses=KnowledgeBaseSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            values_rows(selectors.knowledge_base_list(actor=get_actor(request))),
            lambda page: serialize_rows(KnowledgeBaseSerializer, page),
        )

    @extend_schema(
        operation_id="knowledge_bases_create",
        request=KnowledgeBaseWriteSerializer,
        responses={201: KnowledgeBaseSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = KnowledgeBaseWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        knowledge_base = services.knowledge_base_create(
            actor=get_actor(request), **serializer.validated_data
        )
        return Response(_kb_data(knowledge_base), status=201)


class KnowledgeBaseDetailView(ApiView):
    scope_area = "knowledge"

    @extend_schema(operation_id="knowledge_bases_get", responses=KnowledgeBaseSerializer, tags=TAGS)
    def get(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(
            actor=actor, knowledge_base_id=knowledge_base_id, with_document_count=True
        )
        return Response(_kb_data(kb))

    @extend_schema(
        operation_id="knowledge_bases_update",
        request=KnowledgeBaseWriteSerializer,
        responses=KnowledgeBaseSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        serializer = KnowledgeBaseWriteSerializer(kb, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        kb = services.knowledge_base_update(
            actor=actor, knowledge_base=kb, **serializer.validated_data
        )
        return Response(_kb_data(kb))

    @extend_schema(operation_id="knowledge_bases_delete", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        services.knowledge_base_delete(actor=actor, knowledge_base=kb)
        return Response(status=204)


class KnowledgeBaseReindexView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_bases_reindex",
        request=None,
        responses={202: CountSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        count = services.knowledge_base_reindex(actor=actor, knowledge_base=kb)
        return Response({"count": count}, status=202)


class KnowledgeBaseClearView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_bases_clear", request=None, responses=CountSerializer, tags=TAGS
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        count = services.knowledge_base_clear(actor=actor, knowledge_base=kb)
        return Response({"count": count})


class KnowledgeBaseSearchView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_bases_search",
        request=SearchSerializer,
        responses=SearchResultSerializer,
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        data = validated_input(SearchSerializer, request.data)
        raw_filters = data.get("filters") or {}
        mode = data.get("mode") or kb.search_mode
        hits = selectors.knowledge_search(
            workspace_id=actor.workspace_id,
            knowledge_base_ids=[kb.id],
            query=data["query"],
            top_k=data.get("top_k"),
            mode=mode,
            threshold=data.get("threshold"),
            filters=Filters(
                document_ids=tuple(raw_filters.get("document_ids") or ()),
                metadata=dict(raw_filters.get("metadata") or {}),
            ),
            usage=UsageContext(workspace_id=actor.workspace_id, user_id=actor.user.id),
            rerank=data.get("rerank"),
            rerank_model_id=data.get("rerank_model_id"),
            rerank_candidates=data.get("rerank_candidates"),
            knowledge_bases=[kb],
        )
        result = {
            "query": data["query"],
            "mode": mode,
            "hits": [vars(h) for h in hits],
            "rerank": selectors.rerank_data(hits.rerank) if hits.rerank else None,
        }
        return Response(serialize_row(SearchResultSerializer, result))


class DocumentListView(ApiView):
    scope_area = "knowledge"
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="knowledge_documents_list",
        parameters=[
            OpenApiParameter("status", str, enum=DocumentStatus.values),
            OpenApiParameter("batch_id", uuid.UUID),
        ],
        responses=DocumentSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        query = DocumentListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return self.paginate(
            request,
            selectors.document_list(
                knowledge_base=kb,
                status=query.validated_data.get("status"),
                batch_id=query.validated_data.get("batch_id"),
            ),
            lambda page: DocumentSerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="knowledge_documents_upload",
        request={"multipart/form-data": DocumentUploadSerializer},
        responses={202: UploadResultSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        form: Any = request.data
        serializer = DocumentUploadSerializer(
            data={
                "files": request.FILES.getlist("files"),
                "override": form.get("override", False),
                **({"metadata": form["metadata"]} if "metadata" in form else {}),
            }
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationFailed("metadata must be a JSON object.", field="metadata")
        files = [
            IncomingFile(name=f.name or "file", data=f.read(), content_type=f.content_type or "")
            for f in data["files"]
        ]
        batch, documents = services.documents_add(
            actor=actor,
            knowledge_base=kb,
            files=files,
            override=data["override"],
            metadata=metadata,
        )
        return Response(_upload_data(batch, documents), status=202)


class DocumentTextView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_documents_create_text",
        request=DocumentTextSerializer,
        responses={202: UploadResultSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        serializer = DocumentTextSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        batch, document = services.document_add_text(
            actor=actor,
            knowledge_base=kb,
            name=data["name"],
            text=data["text"],
            override=data["override"],
            metadata=data.get("metadata"),
        )
        return Response(_upload_data(batch, [document]), status=202)


class DocumentUrlView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_documents_import_url",
        request=DocumentUrlSerializer,
        responses={202: UploadResultSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        kb = selectors.access_knowledge_base(actor=actor, knowledge_base_id=knowledge_base_id)
        serializer = DocumentUrlSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        batch, document = services.document_import_url(
            actor=actor,
            knowledge_base=kb,
            url=data["url"],
            name=data["name"],
            override=data["override"],
            metadata=data.get("metadata"),
        )
        return Response(_upload_data(batch, [document]), status=202)


class DocumentDetailView(ApiView):
    scope_area = "knowledge"

    @extend_schema(operation_id="knowledge_documents_get", responses=DocumentSerializer, tags=TAGS)
    def get(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        document = selectors.access_document(
            actor=get_actor(request), knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        return Response(DocumentSerializer(document).data)

    @extend_schema(
        operation_id="knowledge_documents_update",
        request=DocumentUpdateSerializer,
        responses=DocumentSerializer,
        tags=TAGS,
    )
    def patch(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        document = selectors.access_document(
            actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        serializer = DocumentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = services.document_update(
            actor=actor, document=document, **serializer.validated_data
        )
        return Response(DocumentSerializer(document).data)

    @extend_schema(operation_id="knowledge_documents_delete", responses={204: None}, tags=TAGS)
    def delete(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        document = selectors.access_document(
            actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        services.document_delete(actor=actor, document=document)
        return Response(status=204)


class DocumentRedoView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_documents_redo",
        request=None,
        responses={202: DocumentSerializer},
        tags=TAGS,
    )
    def post(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        document = selectors.access_document(
            actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        services.documents_redo(actor=actor, documents=[document])
        document.refresh_from_db()
        return Response(DocumentSerializer(document).data, status=202)


class BatchDetailView(ApiView):
    scope_area = "knowledge"

    @extend_schema(operation_id="knowledge_batches_get", responses=BatchSerializer, tags=TAGS)
    def get(self, request: Request, knowledge_base_id: uuid.UUID, batch_id: uuid.UUID) -> Response:
        batch = selectors.access_batch(
            actor=get_actor(request), knowledge_base_id=knowledge_base_id, batch_id=batch_id
        )
        progress = selectors.batch_progress(batch=batch)
        return Response(BatchSerializer(batch, context={"progress": progress}).data)


class BatchRedoView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_batches_redo_failed",
        request=None,
        responses={202: CountSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, knowledge_base_id: uuid.UUID, batch_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        batch = selectors.access_batch(
            actor=actor, knowledge_base_id=knowledge_base_id, batch_id=batch_id
        )
        count = services.batch_redo_failed(actor=actor, batch=batch)
        return Response({"count": count}, status=202)


class ChunkListView(ApiView):
    scope_area = "knowledge"

    @extend_schema(
        operation_id="knowledge_chunks_list", responses=ChunkSerializer(many=True), tags=TAGS
    )
    def get(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        document = selectors.access_document(
            actor=get_actor(request), knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        return self.paginate(
            request,
            selectors.chunk_list(document=document),
            lambda page: ChunkSerializer(page, many=True).data,
            ordering=("position", "id"),
        )

    @extend_schema(
        operation_id="knowledge_chunks_create",
        request=ChunkCreateSerializer,
        responses={201: ChunkSerializer},
        tags=TAGS,
    )
    def post(
        self, request: Request, knowledge_base_id: uuid.UUID, document_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        document = selectors.access_document(
            actor=actor, knowledge_base_id=knowledge_base_id, document_id=document_id
        )
        serializer = ChunkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chunk = services.chunk_create(
            actor=actor,
            document=document,
            content=serializer.validated_data["content"],
            metadata=serializer.validated_data.get("metadata"),
        )
        return Response(ChunkSerializer(chunk).data, status=201)


class ChunkDetailView(ApiView):
    scope_area = "knowledge"

    @extend_schema(operation_id="knowledge_chunks_get", responses=ChunkSerializer, tags=TAGS)
    def get(self, request: Request, knowledge_base_id: uuid.UUID, chunk_id: uuid.UUID) -> Response:
        chunk = selectors.access_chunk(
            actor=get_actor(request), knowledge_base_id=knowledge_base_id, chunk_id=chunk_id
        )
        return Response(ChunkSerializer(chunk).data)

    @extend_schema(
        operation_id="knowledge_chunks_update",
        request=ChunkUpdateSerializer,
        responses=ChunkSerializer,
        tags=TAGS,
    )
    def patch(
        self, request: Request, knowledge_base_id: uuid.UUID, chunk_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        chunk = selectors.access_chunk(
            actor=actor, knowledge_base_id=knowledge_base_id, chunk_id=chunk_id
        )
        serializer = ChunkUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chunk = services.chunk_update(actor=actor, chunk=chunk, **serializer.validated_data)
        return Response(ChunkSerializer(chunk).data)

    @extend_schema(operation_id="knowledge_chunks_delete", responses={204: None}, tags=TAGS)
    def delete(
        self, request: Request, knowledge_base_id: uuid.UUID, chunk_id: uuid.UUID
    ) -> Response:
        actor = get_actor(request)
        chunk = selectors.access_chunk(
            actor=actor, knowledge_base_id=knowledge_base_id, chunk_id=chunk_id
        )
        services.chunk_delete(actor=actor, chunk=chunk)
        return Response(status=204)
