from django.urls import path

from apps.files.api import views

urlpatterns = [
    path("files", views.FileListView.as_view(), name="file-list"),
    path("files/download/<str:token>", views.FileDownloadView.as_view(), name="file-download"),
    path("files/<uuid:file_id>", views.FileDetailView.as_view(), name="file-detail"),
    path("files/<uuid:file_id>/content", views.FileContentView.as_view(), name="file-content"),
]
