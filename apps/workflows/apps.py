from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "apps.workflows"
    label = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.core.jobs import job_kind_register
        from apps.core.tools import tool_executor_register
        from apps.workflows.services import RUN_JOBS
        from apps.workflows.tool import executor_for

        job_kind_register(RUN_JOBS)
        # Skills runs a workflow tool row through this (it cannot import workflows).
        tool_executor_register("workflow", executor_for)
