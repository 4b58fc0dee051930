"""The operator's admin (django-unfold) and the console's tools, skills, MCP, tasks,
webhooks and triggers pages in a real headless Chromium against the platform over HTTP.
Screenshots go to test-output/console/ (not committed)."""

import pytest

from tests.console.test_browser import browser, shot, signed_in  # noqa: F401
from tests.skills.conftest import mcp_http  # noqa: F401
from tests.tasks.conftest import receiver  # noqa: F401

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


def test_task_run_now_webhook_secret_once_and_a_trigger(
    signed_in,  # noqa: F811
    chat_agent,
    scripted_llm,
    receiver,  # noqa: F811
):
    from apps.providers.scripted import Reply
    from apps.tasks.services import tasks_tick
    from tests.conversations.conftest import wait_for

    page = signed_in
    # A task, run now against the scripted model server, seen in its history.
    page.goto("/tasks/")
    assert page.get_by_text("No tasks yet").is_visible()
    shot(page, "tasks-01-empty")
    page.get_by_role("link", name="Create a task").click()
    page.fill("#id_name", "Morning report")
    page.select_option("#id_agent", label="Helper")
    page.fill("#id_prompt_template", "Write the morning report for $date.")
    page.select_option("#id_schedule_kind", "interval")
    page.fill("#id_interval_seconds", "3600")
    page.fill("#id_timezone", "Europe/Paris")
    shot(page, "tasks-02-form")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url("**/tasks/*/")
    assert page.get_by_text("No execution yet").is_visible()
    scripted_llm.push(Reply(text="All systems **green** this morning."))
    page.get_by_role("button", name="Run now").click()
    page.get_by_text("Execution started").wait_for()  # the page after the POST's redirect

    def succeeded():
        tasks_tick()  # what beat does: settles executions whose run ended
        page.reload()
        return page.locator("#executions").get_by_text("succeeded").count() > 0

    wait_for(succeeded, timeout=20, interval=0.5)
    shot(page, "tasks-03-history")
    page.locator("#executions").get_by_role("link", name="open").click()
    page.wait_for_url("**/chat/*/")
    assert page.get_by_text("All systems").first.is_visible()
    shot(page, "tasks-04-conversation")
    page.goto("/tasks/")
    assert page.locator("#tasks").get_by_text("Morning report").is_visible()
    shot(page, "tasks-05-list")

    # A webhook endpoint: the signing secret shown once; a test event delivered.
    page.goto("/webhooks/")
    assert page.get_by_text("No endpoint yet").is_visible()
    page.fill("#id_url", receiver.url)
    page.fill("#id_description", "Our CRM")
    page.get_by_label("Every event").check()
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_url("**/webhooks/*/")
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("whsec_")
    shot(page, "webhooks-01-secret-once")
    page.reload()
    assert page.locator("#secret").count() == 0 and secret not in page.content()
    with page.expect_navigation():  # the POST's redirect, before any reload
        page.get_by_role("button", name="Send test event").click()

    def delivered():
        page.reload()
        return page.locator("#deliveries").get_by_text("succeeded").count() > 0

    wait_for(delivered, timeout=20, interval=0.5)
    page.locator("#deliveries summary").first.click()
    shot(page, "webhooks-02-deliveries")

    # A trigger: its secret once, its URL and a curl example.
    page.goto("/triggers/")
    page.fill("#id_name", "New orders")
    page.select_option("#id_target", label="Helper")
    page.fill("#id_prompt_template", "A new order arrived: ${body.id}")
    page.get_by_role("button", name="Create trigger").click()
    page.wait_for_url("**/triggers/*/")
    assert page.locator("#secret").inner_text().startswith("whsec_")
    assert "/api/v1/triggers/" in page.locator("#trigger-url").inner_text()
    assert "curl -X POST" in page.locator("#curl").inner_text()
    shot(page, "triggers-01-created")


def test_mcp_server_tools_and_skills(signed_in, mcp_http, tmp_path):  # noqa: F811
    from tests.skills.factories import skill_zip

    page = signed_in
    # An MCP server over HTTP: added, its tools discovered; one of them run from its page.
    page.goto("/mcp/")
    assert page.get_by_text("No MCP server yet").is_visible()
    page.fill("#id_name", "demo")
    page.fill("#id_url", mcp_http.url)
    page.get_by_role("button", name="Add and connect").click()
    page.wait_for_url("**/mcp/*/")
    assert page.locator("#server-tools").get_by_text("demo_echo").is_visible()
    shot(page, "mcp-01-server")
    page.goto("/mcp/")
    assert page.locator("#servers").get_by_text("connected").is_visible()
    shot(page, "mcp-02-list")
    page.goto("/tools/")
    assert page.locator("#tools").get_by_text("http_request").is_visible()
    shot(page, "tools-01-list")
    page.locator("#tools").get_by_role("link", name="demo_echo").click()
    page.fill("#id_arguments", '{"text": 5}')
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".errorlist").get_by_text("text").first.wait_for()
    page.fill("#id_arguments", '{"text": "hello"}')
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#result").get_by_text("echo: hello").wait_for()
    shot(page, "tools-02-run")

    # A skill bundle uploaded, then viewed.
    bundle = tmp_path / "pdf-tools.zip"
    bundle.write_bytes(skill_zip())
    page.goto("/skills/")
    assert page.get_by_text("No skills yet").is_visible()
    page.set_input_files("#id_bundle", str(bundle))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/skills/*/")
    assert page.locator("#files").get_by_text("scripts/extract.py").is_visible()
    shot(page, "skills-01-detail")
    page.goto("/skills/")
    assert page.locator("#skills").get_by_text("pdf-tools").is_visible()
    shot(page, "skills-02-list")
