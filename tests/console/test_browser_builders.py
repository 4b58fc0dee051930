"""The agent and knowledge builders and the security pages in a real headless Chromium
against the platform over real HTTP, models on the scripted server: generate a draft
agent, see a version diff, chat with it beside its form, import a URL document, edit one
of its passages, run a search test; the workspace's audit trail. Screenshots go to
test-output/console/ (not committed)."""

import json

import pytest

from apps.knowledge.models import Chunk
from apps.providers.scripted import Reply
from tests.console.test_browser import browser, shot, signed_in  # noqa: F401
from tests.providers.factories import make_scripted_provider

pytestmark = pytest.mark.slow

DRAFT = {
    "name": "Trip planner",
    "description": "Plans weekend trips.",
    "system_prompt": "You plan weekend trips.\nAsk for the dates first.",
    "opening_message": "Where would you like to go?",
    "starter_questions": ["A weekend in Lisbon?"],
    "tool_ids": [],
    "builtin_tools": [],
}


def test_draft_agent_diff_test_chat_url_import_chunk_edit_and_search(
    signed_in,  # noqa: F811 (the fixture imported above)
    live,
    scripted_llm,
    workspace,
    settings,
    tmp_path,
):
    settings.MEDIA_ROOT = tmp_path / "media"
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    page = signed_in

    # A draft agent from a description fills the form; creating it is one click.
    scripted_llm.push(Reply(text=json.dumps(DRAFT)))
    page.goto("/agents/new")
    page.fill("#draft_description", "Someone who plans weekend trips for me")
    shot(page, "30-agent-describe")
    page.click("button:has-text('Write a draft')")
    page.wait_for_selector("#draft-ready")
    assert page.input_value("#id_name") == "Trip planner"
    assert page.input_value("#id_system_prompt").startswith("You plan weekend trips.")
    shot(page, "31-agent-draft")
    page.click("button:has-text('Create agent')")
    page.wait_for_selector("text=Agent “Trip planner” created.")

    # A second version; the diff shows the prompt line by line.
    page.fill(
        "#id_system_prompt",
        "You plan weekend trips.\nAsk for the dates and the budget first.\nKeep it short.",
    )
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Version 2")
    page.click("a:has-text('Diff')")
    page.wait_for_selector(".diff-field[data-field=system_prompt]")
    assert page.locator(".diff-delete:has-text('Ask for the dates first.')").count() == 1
    assert page.locator(".diff-insert:has-text('Keep it short.')").count() == 1
    shot(page, "32-agent-diff")

    # A test chat beside the form.
    scripted_llm.push(Reply(text="Lisbon is **lovely** in May.", token_delay=0.01))
    page.click("a:has-text('Trip planner')")
    page.click("button:has-text('Test it here')")
    frame = page.frame_locator(".test-chat-frame")
    frame.locator("#chat[data-ready]").wait_for(state="attached")  # chat.js has started
    frame.locator("#composer-input").fill("Where should I go?")
    frame.locator("#composer-input").press("Enter")
    frame.locator(".msg-assistant .bubble strong:has-text('lovely')").wait_for()
    shot(page, "33-agent-test-chat")

    # Optimize the instructions: the proposal beside the current prompt; accept it.
    better = "You plan weekend trips.\nFirst ask for the dates and the budget.\nAnswer briefly."
    scripted_llm.push(
        Reply(text=json.dumps({"system_prompt": better, "changes": ["Ordered the steps."]}))
    )
    page.click("button:has-text('Optimize instructions')")
    page.wait_for_selector("#proposal-new")
    assert page.locator("#proposal-new").inner_text() == better
    shot(page, "32b-agent-proposal")
    page.click("#proposal button:has-text('Accept')")
    page.wait_for_selector("text=Optimized instructions accepted.")
    assert page.input_value("#id_system_prompt") == better

    # Shared with the workspace (recorded in the audit trail).
    page.select_option("#id_visibility", "workspace")
    page.click("button:has-text('Save sharing')")
    page.wait_for_selector("text=Sharing saved.")

    # A knowledge base; a document imported from a URL reaches indexed.
    page.goto("/knowledge/")
    page.fill("#id_name", "Travel notes")
    page.click("button:has-text('Create')")
    page.wait_for_selector("h1:has-text('Travel notes')")
    page.fill("#url-input", f"{scripted_llm.base_url}/models")
    page.fill("#url-name", "catalogue")
    page.click("#url-import button:has-text('Import')")
    page.wait_for_selector("[data-document='catalogue.json'] [data-status=indexed]")
    # A refused address says why.
    page.fill("#url-input", "http://169.254.169.254/latest/meta-data")
    page.fill("#url-name", "")
    settings.OUTBOUND_ALLOWED_HOSTS = []
    page.click("#url-import button:has-text('Import')")
    page.wait_for_selector("#documents-table .alert-error")
    assert "169.254.169.254" in page.locator("#documents-table .alert-error").inner_text()
    shot(page, "34-knowledge-url-import")

    # Its passages; edit one: saved and embedded again.
    page.click("a:has-text('catalogue.json')")
    page.wait_for_selector(".chunk")
    shot(page, "35-knowledge-passages")
    first = page.locator(".chunk").first
    first.locator("button:has-text('Edit')").click()
    page.wait_for_selector(".chunk textarea")
    page.fill(".chunk textarea", "Lisbon trams run every ten minutes in the old town.")
    page.click(".chunk button:has-text('Save')")
    page.wait_for_selector("[data-saved]")
    chunk = Chunk.objects.filter(document__name="catalogue.json").order_by("position").first()
    assert chunk.content == "Lisbon trams run every ten minutes in the old town."
    assert chunk.manual is True
    shot(page, "36-knowledge-chunk-edited")

    # The search test, full-text then vector, with scores.
    page.click("a:has-text('Travel notes')")
    page.fill("#search-q", "Lisbon trams")
    page.select_option("#search-mode", "fulltext")
    page.click("#search-test button:has-text('Search')")
    page.wait_for_selector("#hits .citation")
    assert "Full-text" in page.locator("#search-meta").inner_text()
    assert "Lisbon trams" in page.locator("#hits .citation").first.inner_text()
    page.select_option("#search-mode", "vector")
    page.click("#search-test button:has-text('Search')")
    page.wait_for_selector("#search-meta:has-text('Vector')")
    assert page.locator("#hits [data-score]").count() >= 1
    shot(page, "37-knowledge-search-test")

    # Workspace security and the audit trail.
    page.goto("/settings/security")
    assert page.locator("[data-policy=optional]").count() == 1
    shot(page, "38-security")
    page.goto("/settings/audit")
    page.wait_for_selector("#audit-events [data-action='agent.sharing']")
    page.fill("#id_action", "nothing")
    page.click("button:has-text('Filter')")
    page.wait_for_selector("text=No events match")
    page.goto("/settings/audit")
    page.wait_for_selector("#audit-events")
    shot(page, "39-audit")
