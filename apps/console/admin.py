"""The operator's console (the Django admin) under django-unfold: its site, sidebar and
dashboard in apps/console/admin_site.py, a dashboard on its index
(templates/admin/index.html), without what an operator never edits (Groups: roles live in
workspaces; Sites: one site; idempotency records: a cache), and with the libraries' admins
(allauth, OAuth toolkit, Celery beat) drawn in the same theme."""

from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.sites.models import Site
from unfold.admin import ModelAdmin

from apps.core.models import IdempotencyRecord

for hidden in (Group, Site, IdempotencyRecord):
    if admin.site.is_registered(hidden):
        admin.site.unregister(hidden)

# The platform's own admins derive from unfold's ModelAdmin in their admin.py; the
# libraries' keep their behaviour and get unfold's forms, widgets and change lists by
# re-registration with unfold's class mixed in (the pattern unfold documents). The console
# app comes last in INSTALLED_APPS, so every library's admin is registered by now.
for model, model_admin in list(admin.site._registry.items()):
    if not isinstance(model_admin, ModelAdmin):
        themed = type(type(model_admin).__name__, (type(model_admin), ModelAdmin), {})
        admin.site.unregister(model)
        admin.site.register(model, themed)
