"""The operator's console (the Django admin), made worthy of it: named, with a dashboard
on its index (templates/admin/index.html) and without what an operator never edits
(Groups: roles live in workspaces; Sites: one site; idempotency records: a cache)."""

from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.sites.models import Site

from apps.core.models import IdempotencyRecord

admin.site.site_header = "Agent Platform · operator console"
admin.site.site_title = "Agent Platform admin"
admin.site.index_title = "Operations"
admin.site.site_url = "/"

for model in (Group, Site, IdempotencyRecord):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
