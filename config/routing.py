"""WebSocket routes of every app, gathered in one list."""

from django.urls import URLPattern, URLResolver

from apps.conversations.routing import websocket_urlpatterns as conversations_ws

websocket_urlpatterns: list[URLPattern | URLResolver] = [*conversations_ws]
