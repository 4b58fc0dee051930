"""The operator's admin (django-unfold) and the console's tools, skills, MCP, tasks,
webhooks and triggers pages in a real headless Chromium against the platform over HTTP.
Screenshots go to test-output/console/ (not committed)."""

import pytest

from tests.console.test_browser import browser, shot, signed_in  # noqa: F401

pytestmark = pytest.mark.slow


def test_operator_admin_index_and_a_change_list(signed_in, user):  # noqa: F811
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    page = signed_in
    page.goto("/admin/")
    assert page.title().endswith("Agent Platform admin")
    assert page.locator("#operator-dashboard").is_visible()
    sidebar = page.locator("#nav-sidebar-apps")
    assert sidebar.get_by_text("Tools, skills and MCP servers").is_visible()
    shot(page, "admin-01-index")
    sidebar.get_by_text("Tools, skills and MCP servers").click()
    sidebar.get_by_role("link", name="MCP servers").click()
    page.wait_for_url("**/admin/skills/mcpserver/")
    assert "MCP server" in page.title()
    shot(page, "admin-02-mcp-servers")
    page.goto("/admin/users/user/")
    assert page.get_by_text(user.email).first.is_visible()
    shot(page, "admin-03-users")
