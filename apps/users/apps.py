from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "apps.users"
    label = "users"
    verbose_name = "Users and workspaces"

    def ready(self) -> None:
        from apps.users import receivers, schema  # noqa: F401  (audit receivers, OpenAPI auth)
