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

urlpatterns += [
    path("api-keys", views.ApiKeyListView.as_view(), name="api-key-list"),
    path("api-keys/<uuid:api_key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("audit-events", views.AuditEventListView.as_view(), name="audit-event-list"),
    path(
        "workspaces/<uuid:workspace_id>/security",
        views.WorkspaceSecurityView.as_view(),
        name="workspace-security",
    ),
    path(
        "oauth-applications",
        views.OAuthApplicationListView.as_view(),
        name="oauth-application-list",
    ),
    path(
        "oauth-applications/<uuid:application_id>",
        views.OAuthApplicationDetailView.as_view(),
        name="oauth-application-detail",
    ),
    path("me", views.MeView.as_view(), name="me"),
    path("me/authorizations", views.MeAuthorizationListView.as_view(), name="me-authorizations"),
    path(
        "me/authorizations/<id:application_id>",
        views.MeAuthorizationDetailView.as_view(),
        name="me-authorization-detail",
    ),
    path("auth/providers", views.ProviderListView.as_view(), name="auth-providers"),
    path("admin/users", views.AdminUserListView.as_view(), name="admin-user-list"),
    path(
        "admin/users/<uuid:user_id>", views.AdminUserDetailView.as_view(), name="admin-user-detail"
    ),
    path(
        "admin/users/<uuid:user_id>/mfa/reset",
        views.AdminUserMfaResetView.as_view(),
        name="admin-user-mfa-reset",
    ),
]
