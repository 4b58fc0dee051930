from django.urls import path

from apps.workflows.api import views

urlpatterns = [
    path("workflows", views.WorkflowListView.as_view(), name="workflow-list"),
    path("workflows/validate", views.ValidateView.as_view(), name="workflow-validate"),
    path("workflows/import", views.ImportView.as_view(), name="workflow-import"),
    path("workflows/runs", views.RunListView.as_view(), name="workflow-run-list"),
    path("workflows/runs/<uuid:run_id>", views.RunDetailView.as_view(), name="workflow-run-detail"),
    path(
        "workflows/runs/<uuid:run_id>/cancel",
        views.RunCancelView.as_view(),
        name="workflow-run-cancel",
    ),
    path(
        "workflows/runs/<uuid:run_id>/rerun",
        views.RunRerunView.as_view(),
        name="workflow-run-rerun",
    ),
    path(
        "workflows/runs/<uuid:run_id>/approve",
        views.RunApproveView.as_view(),
        name="workflow-run-approve",
    ),
    path(
        "workflows/runs/<uuid:run_id>/reject",
        views.RunRejectView.as_view(),
        name="workflow-run-reject",
    ),
    path(
        "workflows/runs/<uuid:run_id>/stream",
        views.RunStreamView.as_view(),
        name="workflow-run-stream",
    ),
    path(
        "workflows/<uuid:workflow_id>", views.WorkflowDetailView.as_view(), name="workflow-detail"
    ),
    path(
        "workflows/<uuid:workflow_id>/versions",
        views.VersionListView.as_view(),
        name="workflow-version-list",
    ),
    path(
        "workflows/<uuid:workflow_id>/versions/diff",
        views.VersionDiffView.as_view(),
        name="workflow-version-diff",
    ),
    path(
        "workflows/<uuid:workflow_id>/versions/<int:number>",
        views.VersionDetailView.as_view(),
        name="workflow-version-detail",
    ),
    path(
        "workflows/<uuid:workflow_id>/restore",
        views.RestoreView.as_view(),
        name="workflow-restore",
    ),
    path(
        "workflows/<uuid:workflow_id>/publish",
        views.PublishView.as_view(),
        name="workflow-publish",
    ),
    path("workflows/<uuid:workflow_id>/export", views.ExportView.as_view(), name="workflow-export"),
    path(
        "workflows/<uuid:workflow_id>/tool", views.WorkflowToolView.as_view(), name="workflow-tool"
    ),
    path(
        "workflows/<uuid:workflow_id>/runs", views.RunStartView.as_view(), name="workflow-run-start"
    ),
]
