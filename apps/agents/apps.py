from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Imported here, not at module level: services import models, which Django
        # loads only after every AppConfig exists.
        from apps.agents.selectors import agent_usage_labels
        from apps.agents.services import AGENT_JOBS
        from apps.core.jobs import job_kind_register
        from apps.providers.selectors import USAGE_GROUP_LABELLERS

        job_kind_register(AGENT_JOBS)
        USAGE_GROUP_LABELLERS["agent"] = agent_usage_labels
