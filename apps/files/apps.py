from django.apps import AppConfig


class FilesConfig(AppConfig):
    name = "apps.files"
    label = "files"
    verbose_name = "Files"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django loads
        # only after every AppConfig exists. receivers: storage cleanup when rows go by
        # cascade (a workspace deleted).
        from apps.core.jobs import job_kind_register
        from apps.files import receivers  # noqa: F401
        from apps.files.services import PARSE_JOBS

        job_kind_register(PARSE_JOBS)
