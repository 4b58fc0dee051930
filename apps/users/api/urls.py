from django.urls import path

from apps.users.api import views

urlpatterns = [
    path("workspaces", views.WorkspaceListView.as_view(), name="workspace-list"),
    path(
        "workspaces/<uuid:workspace_id>",
        views.WorkspaceDetailView.as_view(),
        name="workspace-detail",
    ),
    path(
        "workspaces/<uuid:workspace_id>/members",
        views.MemberListView.as_view(),
        name="workspace-member-list",
    ),
    path(
        "workspaces/<uuid:workspace_id>/members/<uuid:user_id>",
        views.MemberDetailView.as_view(),
        name="workspace-member-detail",
    ),
]
