from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.agents.services import AGENT_JOBS
        from apps.core.jobs import job_kind_register

        job_kind_register(AGENT_JOBS)
