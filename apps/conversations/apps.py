from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = "Conversations and runs"

    def ready(self) -> None:
        from apps.conversations import schema  # noqa: F401  (registers the ticket scheme)
