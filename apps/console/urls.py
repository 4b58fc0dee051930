from django.urls import path

from apps.console.views import agents, chat, home, knowledge, settings
from apps.console.views import security as security_views
from apps.console.views import tasks as task_pages
from apps.console.views import tools as tool_pages
from apps.console.views import webhooks as webhook_pages
from apps.console.views import workflows as workflow_pages

app_name = "console"

urlpatterns = [
    path("", home.home, name="home"),
    path("workspace", home.workspace_switch, name="workspace_switch"),
    # Chat
    path("chat/", chat.conversation_index, name="chat"),
    path("chat/new", chat.chat_new, name="chat_new"),
    path("chat/start", chat.chat_start, name="chat_start"),
    path("chat/<uuid:conversation_id>/", chat.conversation_detail, name="conversation"),
    path("chat/<uuid:conversation_id>/send", chat.conversation_send, name="conversation_send"),
    path(
        "chat/<uuid:conversation_id>/ticket", chat.conversation_ticket, name="conversation_ticket"
    ),
    path(
        "chat/<uuid:conversation_id>/regenerate",
        chat.conversation_regenerate_view,
        name="conversation_regenerate",
    ),
    path(
        "chat/<uuid:conversation_id>/edit-last",
        chat.conversation_edit_last,
        name="conversation_edit_last",
    ),
    path(
        "chat/<uuid:conversation_id>/rename",
        chat.conversation_rename_view,
        name="conversation_rename",
    ),
    path(
        "chat/<uuid:conversation_id>/delete",
        chat.conversation_delete_view,
        name="conversation_delete",
    ),
    path("chat/<uuid:conversation_id>/share", chat.conversation_share, name="conversation_share"),
    path(
        "chat/<uuid:conversation_id>/export", chat.conversation_export, name="conversation_export"
    ),
    path("chat/messages/<uuid:message_id>", chat.message_fragment, name="message"),
    path("chat/messages/<uuid:message_id>/feedback", chat.message_feedback, name="feedback"),
    path("chat/runs/<uuid:run_id>/decision", chat.run_decision, name="run_decision"),
    path("chat/runs/<uuid:run_id>/stop", chat.run_stop, name="run_stop"),
    path("shared/<str:token>", chat.shared_page, name="shared"),
    # Agents
    path("agents/", agents.agent_index, name="agents"),
    path("agents/new", agents.agent_new, name="agent_new"),
    path("agents/<uuid:agent_id>/", agents.agent_detail, name="agent"),
    path(
        "agents/<uuid:agent_id>/versions/<int:number>/restore",
        agents.agent_restore,
        name="agent_restore",
    ),
    # Knowledge
    path("knowledge/", knowledge.knowledge_index, name="knowledge"),
    path(
        "knowledge/<uuid:knowledge_base_id>/",
        knowledge.knowledge_base_detail,
        name="knowledge_base",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/documents",
        knowledge.knowledge_documents,
        name="knowledge_documents",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/upload",
        knowledge.knowledge_upload,
        name="knowledge_upload",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/search",
        knowledge.knowledge_search_test,
        name="knowledge_search",
    ),
    # Settings
    path("settings/keys", settings.api_keys, name="api_keys"),
    path(
        "settings/keys/<uuid:api_key_id>/revoke",
        settings.api_key_revoke_view,
        name="api_key_revoke",
    ),
    path("settings/providers", settings.providers, name="providers"),
    path(
        "settings/providers/<uuid:provider_id>/verify",
        settings.provider_verify_view,
        name="provider_verify",
    ),
    path("settings/members", settings.members, name="members"),
    path("settings/usage", settings.usage, name="usage"),
    path("settings/usage.csv", settings.usage_csv, name="usage_csv"),
    # --- Tasks, webhooks and triggers (apps/console/views/tasks.py, webhooks.py) ---
    path("tasks/", task_pages.task_index, name="tasks"),
    path("tasks/new", task_pages.task_new, name="task_new"),
    path("tasks/<uuid:task_id>/", task_pages.task_detail, name="task"),
    path("tasks/<uuid:task_id>/edit", task_pages.task_edit, name="task_edit"),
    path("tasks/<uuid:task_id>/enable", task_pages.task_enable, name="task_enable"),
    path("tasks/<uuid:task_id>/run", task_pages.task_run, name="task_run"),
    path("tasks/<uuid:task_id>/delete", task_pages.task_delete, name="task_delete"),
    path("webhooks/", webhook_pages.webhook_index, name="webhooks"),
    path("webhooks/<uuid:endpoint_id>/", webhook_pages.webhook_detail, name="webhook"),
    path("webhooks/<uuid:endpoint_id>/rotate", webhook_pages.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<uuid:endpoint_id>/enable", webhook_pages.webhook_enable, name="webhook_enable"),
    path("webhooks/<uuid:endpoint_id>/test", webhook_pages.webhook_test, name="webhook_test"),
    path("webhooks/<uuid:endpoint_id>/delete", webhook_pages.webhook_delete, name="webhook_delete"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries/<uuid:delivery_id>/redeliver",
        webhook_pages.webhook_redeliver_view,
        name="webhook_redeliver",
    ),
    path("triggers/", task_pages.trigger_index, name="triggers"),
    path("triggers/<uuid:trigger_id>/", task_pages.trigger_detail, name="trigger"),
    path("triggers/<uuid:trigger_id>/enable", task_pages.trigger_enable, name="trigger_enable"),
    path(
        "triggers/<uuid:trigger_id>/delete", task_pages.trigger_delete_view, name="trigger_delete"
    ),
    # --- Tools, skills and MCP servers (apps/console/views/tools.py) ---
    path("tools/", tool_pages.tool_index, name="tools"),
    path("tools/<uuid:tool_id>/", tool_pages.tool_detail, name="tool"),
    path("skills/", tool_pages.skill_index, name="skills"),
    path("skills/<uuid:skill_id>/", tool_pages.skill_detail, name="skill"),
    path("skills/<uuid:skill_id>/delete", tool_pages.skill_delete_view, name="skill_delete"),
    path("mcp/", tool_pages.mcp_index, name="mcp"),
    path("mcp/oauth/callback", tool_pages.mcp_oauth_callback, name="mcp_oauth_callback"),
    path("mcp/<uuid:mcp_server_id>/", tool_pages.mcp_server_detail, name="mcp_server"),
    path(
        "mcp/<uuid:mcp_server_id>/refresh",
        tool_pages.mcp_server_refresh_view,
        name="mcp_server_refresh",
    ),
    path(
        "mcp/<uuid:mcp_server_id>/delete",
        tool_pages.mcp_server_delete_view,
        name="mcp_server_delete",
    ),
    path("mcp/<uuid:mcp_server_id>/connect", tool_pages.mcp_oauth_connect, name="mcp_connect"),
    # Workspace security and audit trail
    path("settings/security", security_views.security, name="security"),
    path("settings/audit", security_views.audit, name="audit"),
    # Knowledge: URL import, redo, passages, chunk edit
    path(
        "knowledge/<uuid:knowledge_base_id>/import-url",
        knowledge.knowledge_import_url,
        name="knowledge_import_url",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/documents/<uuid:document_id>/",
        knowledge.knowledge_document,
        name="knowledge_document",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/documents/<uuid:document_id>/redo",
        knowledge.knowledge_document_redo,
        name="knowledge_document_redo",
    ),
    path(
        "knowledge/<uuid:knowledge_base_id>/chunks/<uuid:chunk_id>",
        knowledge.knowledge_chunk,
        name="knowledge_chunk",
    ),
    # Agents: drafts, prompt optimization, version diff, sharing, import/export
    path("agents/generate", agents.agent_generate, name="agent_generate"),
    path("agents/import", agents.agent_import_view, name="agent_import"),
    path("agents/jobs/<uuid:job_id>", agents.agent_job_status, name="agent_job"),
    path("agents/<uuid:agent_id>/optimize", agents.agent_optimize, name="agent_optimize"),
    path(
        "agents/<uuid:agent_id>/proposals/<uuid:job_id>/accept",
        agents.agent_proposal_accept,
        name="agent_proposal_accept",
    ),
    path("agents/<uuid:agent_id>/diff", agents.agent_diff, name="agent_diff"),
    path("agents/<uuid:agent_id>/export", agents.agent_export_view, name="agent_export"),
    path("agents/<uuid:agent_id>/sharing", agents.agent_sharing, name="agent_sharing"),
    path("agents/<uuid:agent_id>/test-chat", agents.agent_test_chat, name="agent_test_chat"),
    # --- Workflows (apps/console/views/workflows.py) ---
    path("workflows/", workflow_pages.workflow_index, name="workflows"),
    path("workflows/import", workflow_pages.workflow_import_view, name="workflow_import"),
    path("workflows/runs/<uuid:run_id>/", workflow_pages.run_detail, name="workflow_run"),
    path("workflows/runs/<uuid:run_id>/live", workflow_pages.run_live, name="workflow_run_live"),
    path(
        "workflows/runs/<uuid:run_id>/cancel",
        workflow_pages.run_cancel_view,
        name="workflow_run_cancel",
    ),
    path(
        "workflows/runs/<uuid:run_id>/rerun", workflow_pages.run_rerun_view, name="workflow_rerun"
    ),
    path(
        "workflows/runs/<uuid:run_id>/decide",
        workflow_pages.run_decide_view,
        name="workflow_run_decide",
    ),
    path("workflows/<uuid:workflow_id>/", workflow_pages.workflow_detail, name="workflow"),
    path(
        "workflows/<uuid:workflow_id>/publish",
        workflow_pages.workflow_publish_view,
        name="workflow_publish",
    ),
    path(
        "workflows/<uuid:workflow_id>/restore",
        workflow_pages.workflow_restore_view,
        name="workflow_restore",
    ),
    path(
        "workflows/<uuid:workflow_id>/export",
        workflow_pages.workflow_export_view,
        name="workflow_export",
    ),
    path(
        "workflows/<uuid:workflow_id>/delete",
        workflow_pages.workflow_delete_view,
        name="workflow_delete",
    ),
    path(
        "workflows/<uuid:workflow_id>/graph", workflow_pages.workflow_graph, name="workflow_graph"
    ),
    path("workflows/<uuid:workflow_id>/runs/", workflow_pages.workflow_runs, name="workflow_runs"),
    path(
        "workflows/<uuid:workflow_id>/start", workflow_pages.workflow_start, name="workflow_start"
    ),
]
