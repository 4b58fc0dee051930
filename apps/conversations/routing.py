from django.urls import path

from apps.conversations.consumers import ConversationStreamConsumer

websocket_urlpatterns = [
    path(
        "ws/v1/conversations/<uuid:conversation_id>/stream",
        ConversationStreamConsumer.as_asgi(),
    ),
]
