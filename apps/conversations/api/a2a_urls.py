"""The A2A routes (outside /api/v1: the card sits at the protocol's well-known path)."""

from django.urls import path

from apps.conversations.api import a2a

urlpatterns = [
    path(
        ".well-known/agent-card.json",
        a2a.A2aWellKnownCardView.as_view(),
        name="a2a-well-known-card",
    ),
    path(
        "a2a/.well-known/agent-card.json",
        a2a.A2aWorkspaceCardView.as_view(),
        name="a2a-workspace-card",
    ),
    path("a2a", a2a.A2aWorkspaceRpcView.as_view(), name="a2a-workspace-rpc"),
    path(
        "a2a/agents/<str:slug>/.well-known/agent-card.json",
        a2a.A2aAgentCardView.as_view(),
        name="a2a-agent-card",
    ),
    path("a2a/agents/<str:slug>/rpc", a2a.A2aAgentRpcView.as_view(), name="a2a-agent-rpc"),
]
