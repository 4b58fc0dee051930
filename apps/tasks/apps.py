from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "apps.tasks"
    label = "tasks"
    verbose_name = "Tasks and webhooks"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.core.jobs import job_kind_register
        from apps.core.outbox import outbox_register
        from apps.tasks.services import DELIVERY_JOBS, EXECUTION_JOBS, webhook_events_record

        job_kind_register(EXECUTION_JOBS)
        job_kind_register(DELIVERY_JOBS)
        outbox_register("webhooks", webhook_events_record)
