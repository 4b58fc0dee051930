from django.urls import path

from apps.knowledge.api import views

KB = "knowledge-bases/<uuid:knowledge_base_id>"

urlpatterns = [
    path("knowledge-bases", views.KnowledgeBaseListView.as_view(), name="knowledge-base-list"),
    path(KB, views.KnowledgeBaseDetailView.as_view(), name="knowledge-base-detail"),
    path(f"{KB}/reindex", views.KnowledgeBaseReindexView.as_view(), name="knowledge-base-reindex"),
    path(f"{KB}/clear", views.KnowledgeBaseClearView.as_view(), name="knowledge-base-clear"),
    path(f"{KB}/search", views.KnowledgeBaseSearchView.as_view(), name="knowledge-base-search"),
    path(f"{KB}/documents", views.DocumentListView.as_view(), name="knowledge-document-list"),
    path(f"{KB}/documents/text", views.DocumentTextView.as_view(), name="knowledge-document-text"),
    path(f"{KB}/documents/url", views.DocumentUrlView.as_view(), name="knowledge-document-url"),
    path(
        f"{KB}/documents/<uuid:document_id>",
        views.DocumentDetailView.as_view(),
        name="knowledge-document-detail",
    ),
    path(
        f"{KB}/documents/<uuid:document_id>/redo",
        views.DocumentRedoView.as_view(),
        name="knowledge-document-redo",
    ),
    path(
        f"{KB}/documents/<uuid:document_id>/chunks",
        views.ChunkListView.as_view(),
        name="knowledge-chunk-list",
    ),
    path(f"{KB}/batches/<uuid:batch_id>", views.BatchDetailView.as_view(), name="knowledge-batch"),
    path(
        f"{KB}/batches/<uuid:batch_id>/redo",
        views.BatchRedoView.as_view(),
        name="knowledge-batch-redo",
    ),
    path(f"{KB}/chunks/<uuid:chunk_id>", views.ChunkDetailView.as_view(), name="knowledge-chunk"),
]
