from django.urls import path

from apps.conversations.api import agui, openai, views

urlpatterns = [
    path("conversations", views.ConversationListView.as_view(), name="conversation-list"),
    path(
        "conversations/<uuid:conversation_id>",
        views.ConversationDetailView.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/export",
        views.ConversationExportView.as_view(),
        name="conversation-export",
    ),
    path(
        "conversations/<uuid:conversation_id>/messages",
        views.MessageListView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<uuid:conversation_id>/queue",
        views.ConversationQueueView.as_view(),
        name="conversation-queue",
    ),
    path(
        "conversations/<uuid:conversation_id>/runs",
        views.ConversationRunsView.as_view(),
        name="conversation-runs",
    ),
    path(
        "conversations/<uuid:conversation_id>/edit-last-user-message",
        views.EditLastUserMessageView.as_view(),
        name="conversation-edit-last",
    ),
    path(
        "conversations/<uuid:conversation_id>/regenerate",
        views.RegenerateView.as_view(),
        name="conversation-regenerate",
    ),
    path(
        "conversations/<uuid:conversation_id>/shares",
        views.ShareListView.as_view(),
        name="conversation-shares",
    ),
    path(
        "conversations/<uuid:conversation_id>/shares/<uuid:share_id>",
        views.ShareDetailView.as_view(),
        name="conversation-share-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/stream-tickets",
        views.StreamTicketView.as_view(),
        name="conversation-stream-tickets",
    ),
    path(
        "conversations/<uuid:conversation_id>/stream",
        views.ConversationStreamView.as_view(),
        name="conversation-stream",
    ),
    path("shared/<str:token>", views.SharedConversationView.as_view(), name="shared-conversation"),
    path("runs/<uuid:run_id>", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<uuid:run_id>/cancel", views.RunCancelView.as_view(), name="run-cancel"),
    path("runs/<uuid:run_id>/promote", views.RunPromoteView.as_view(), name="run-promote"),
    path("runs/<uuid:run_id>/approvals", views.RunApprovalsView.as_view(), name="run-approvals"),
    path("runs/<uuid:run_id>/stream", views.RunStreamView.as_view(), name="run-stream"),
    path(
        "messages/<uuid:message_id>/feedback",
        views.MessageFeedbackView.as_view(),
        name="message-feedback",
    ),
    path("agents/<str:agent>/ag-ui", agui.AgentAguiView.as_view(), name="agent-ag-ui"),
    path("chat/completions", openai.ChatCompletionsView.as_view(), name="openai-chat-completions"),
    # With these, an OpenAI SDK whose base URL is /api/v1 talks to our agents.
    path("models", openai.ModelListView.as_view(), name="openai-models"),
    path("models/<str:model>", openai.ModelDetailView.as_view(), name="openai-model-detail"),
]
