from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "apps.knowledge"
    label = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.core.jobs import job_kind_register
        from apps.knowledge.services import INGESTION

        job_kind_register(INGESTION)
