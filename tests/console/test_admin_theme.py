"""The operator's admin under django-unfold: every registered admin's change list and add
page load for a superuser, and no name on them (titles, sidebar, app list) is one of
Django's automatic ones ("Mcp servers", "O auth clients", "Upload batchs", ...)."""

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from unfold.admin import ModelAdmin

from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db

# What Django makes of a CamelCase acronym or an irregular plural when no verbose name is
# set (and the library names the sidebar renames).
AUTOMATIC = re.compile(
    r"\bMcp |\bmcp server|\bO auth|\bo auth|batchs\b|deliverys\b|feedbacks\b|\bOpen api"
    r"|\bopen api source|\bOpenapi source|\bOauth |\bId tokens\b|Openid_Connect|Django_Htmx"
)


# A library's model named in its own migrations: its own change list and form keep that
# name (renaming it would be a migration of the library); everywhere else, the sidebar and
# the app lists included, it goes by the operator's name ("ID tokens").
OWN_NAMES = {"oauth2_provider.IDToken": re.compile(r"\bId tokens?\b|\bid tokens?\b")}


@pytest.fixture
def operator_client():
    client = Client()
    client.force_login(UserFactory(email="op@example.com", is_staff=True, is_superuser=True))
    return client


def registered():
    return sorted(admin.site._registry.items(), key=lambda kv: kv[0]._meta.label)


def test_every_admin_is_unfolds():
    for model, model_admin in registered():
        assert isinstance(model_admin, ModelAdmin), model._meta.label


def test_every_model_of_the_platform_has_a_proper_name():
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        assert "verbose_name" in type(config).__dict__, config.label
        for model in config.get_models():
            names = f"{model._meta.verbose_name} / {model._meta.verbose_name_plural}"
            assert not AUTOMATIC.search(names), f"{model._meta.label}: {names}"


@pytest.mark.parametrize("label", [m._meta.label for m, _ in registered()])
def test_changelist_and_add_page_load_with_proper_names(operator_client, label):
    model = apps.get_model(label)
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    pages = [reverse(f"{prefix}_changelist")]
    request = type("R", (), {"user": UserFactory.build(is_superuser=True, is_active=True)})
    if admin.site._registry[model].has_add_permission(request):
        pages.append(reverse(f"{prefix}_add"))
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        start = html.index('id="nav-sidebar-apps"')
        end = html.index("</nav>", start)
        sidebar, page = html[start:end], html[:start] + html[end:]
        if label in OWN_NAMES:
            page = OWN_NAMES[label].sub("", page)
        for part in (sidebar, page):
            found = AUTOMATIC.search(part)
            assert found is None, f"{url}: automatic name {found.group(0)!r}"


def test_sidebar_groups_apps_in_platform_order_with_their_names(operator_client):
    html = operator_client.get("/admin/").content.decode()
    sidebar = html[html.index('id="nav-sidebar-apps"') :]
    order = [
        "Users and workspaces",
        "Model providers",
        "Tools, skills and MCP servers",
        "Knowledge bases",
        "Agents",
        "Conversations and runs",
        "Tasks and webhooks",
        "OAuth2 applications and tokens",
    ]
    positions = [sidebar.index(name) for name in order]
    assert positions == sorted(positions)
    for name in ("MCP servers", "OAuth clients", "Upload batches", "Webhook deliveries"):
        assert name in sidebar
    assert "<title>" in html and "Agent Platform admin" in html
