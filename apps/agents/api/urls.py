from django.urls import path

from apps.agents.api import views

urlpatterns = [
    path("agents", views.AgentListView.as_view(), name="agent-list"),
    path(
        "workspaces/<uuid:workspace_id>/code-interpreter",
        views.CodeInterpreterPolicyView.as_view(),
        name="code-interpreter-policy",
    ),
    path("agents/import", views.AgentImportView.as_view(), name="agent-import"),
    path("agents/<uuid:agent_id>", views.AgentDetailView.as_view(), name="agent-detail"),
    path(
        "agents/<uuid:agent_id>/unarchive",
        views.AgentUnarchiveView.as_view(),
        name="agent-unarchive",
    ),
    path("agents/<uuid:agent_id>/purge", views.AgentPurgeView.as_view(), name="agent-purge"),
    path(
        "agents/<uuid:agent_id>/duplicate",
        views.AgentDuplicateView.as_view(),
        name="agent-duplicate",
    ),
    path("agents/<uuid:agent_id>/export", views.AgentExportView.as_view(), name="agent-export"),
    path("agents/<uuid:agent_id>/sharing", views.AgentSharingView.as_view(), name="agent-sharing"),
    path(
        "agents/<uuid:agent_id>/versions",
        views.AgentVersionListView.as_view(),
        name="agent-version-list",
    ),
    path(
        "agents/<uuid:agent_id>/versions/diff",
        views.AgentVersionDiffView.as_view(),
        name="agent-version-diff",
    ),
    path(
        "agents/<uuid:agent_id>/versions/<id:number>",
        views.AgentVersionDetailView.as_view(),
        name="agent-version-detail",
    ),
    path(
        "agents/<uuid:agent_id>/versions/<id:number>/restore",
        views.AgentVersionRestoreView.as_view(),
        name="agent-version-restore",
    ),
    path(
        "agent-jobs/generate-agent",
        views.GenerateAgentJobView.as_view(),
        name="agent-job-generate-agent",
    ),
    path(
        "agent-jobs/optimize-prompt",
        views.OptimizePromptJobView.as_view(),
        name="agent-job-optimize-prompt",
    ),
    path("agent-jobs", views.AgentJobListView.as_view(), name="agent-job-list"),
    path("agent-jobs/<uuid:job_id>", views.AgentJobDetailView.as_view(), name="agent-job-detail"),
    path(
        "agent-jobs/<uuid:job_id>/cancel",
        views.AgentJobCancelView.as_view(),
        name="agent-job-cancel",
    ),
]
