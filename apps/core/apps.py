from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Platform core"

    def ready(self) -> None:
        # Path converters must be registered before any URLconf is imported.
        from apps.core.api import converters  # noqa: F401
