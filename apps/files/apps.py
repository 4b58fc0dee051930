from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "apps.files"
    label = "files"
    verbose_name = "Files"

    def ready(self) -> None:
        # Storage cleanup when rows go by cascade (workspace deleted): see receivers.py.
        from apps.files import receivers  # noqa: F401
