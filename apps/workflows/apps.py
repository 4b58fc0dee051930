from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.core.jobs import job_kind_register
        from apps.workflows.services import RUN_JOBS

        job_kind_register(RUN_JOBS)
