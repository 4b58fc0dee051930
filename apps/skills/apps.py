from django.apps import AppConfig


class SkillsConfig(AppConfig):
    name = "apps.skills"
    label = "skills"
    verbose_name = "Tools, skills and MCP servers"
