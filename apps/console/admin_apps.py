"""django.contrib.admin with the operator's site (apps/console/admin_site.py) as the default
`admin.site`. In a module of its own: beside the console's AppConfig it would make two
default configurations for `apps.console`."""

from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    default_site = "apps.console.admin_site.OperatorAdminSite"
