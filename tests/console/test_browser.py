"""The console in a real headless Chromium (Debian's, driven by Playwright) against the
platform served over real HTTP, with models on the scripted OpenAI-compatible server.

One journey per test, as a person walks it; screenshots go to test-output/console/
(not committed) for a human to look at."""

import base64
import hashlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from django.core import mail

from apps.conversations.models import Run
from apps.providers.scripted import Reply, ToolCall
from tests.conversations.conftest import wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI never skips the browser tests")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are plain synchronous code all the same.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def signed_in(browser, live, http):
    """A browser page signed in as alice (the `http` fixture's session)."""
    context = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 860})
    context.add_cookies(
        [{"name": "sessionid", "value": http.cookies["sessionid"], "url": live.url}]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_sign_up_verify_and_sign_in_with_mfa(browser, live, settings):
    from allauth.mfa.totp.internal.auth import hotp_value

    # The code of the next 30 s period is accepted (a used code cannot be replayed, and
    # the test does not wait for the clock).
    settings.MFA_TOTP_TOLERANCE = 1

    context = browser.new_context(base_url=live.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/")
    assert "/accounts/login/" in page.url
    shot(page, "01-sign-in")
    page.click("text=Sign up")
    page.fill("input[name=email]", "bob@example.com")
    page.fill("input[name=password1]", "a long passphrase 42")
    page.fill("input[name=password2]", "a long passphrase 42")
    shot(page, "02-sign-up")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/confirm-email/"))
    shot(page, "03-verify-email")
    code = re.search(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", mail.outbox[-1].body, re.M).group(1)
    page.fill("input[name=code]", code)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")
    assert page.locator("h1").inner_text().startswith("Welcome")
    shot(page, "04-home-empty")

    # MFA: set up TOTP, see recovery codes, then sign in again with a code.
    page.goto("/accounts/2fa/totp/activate/")
    if "reauthenticate" in page.url:  # a sensitive step: allauth asks for the password
        shot(page, "05-reauthenticate")
        page.fill("input[name=password]", "a long passphrase 42")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/accounts/2fa/totp/activate/"))
    secret = page.locator("#authenticator_secret").input_value()
    shot(page, "05-mfa-setup")  # fmt: skip
    import time

    page.fill("input[name=code]", f"{hotp_value(secret, int(time.time()) // 30):06d}")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto("/accounts/2fa/recovery-codes/")
    shot(page, "06-recovery-codes")
    page.goto("/")
    page.click("text=Sign out")
    page.wait_for_load_state()
    if "logout" in page.url:  # allauth asks to confirm on GET
        page.click("button[type=submit]")
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "bob@example.com")
    page.fill("input[name=password]", "a long passphrase 42")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/accounts/2fa/authenticate/"))
    shot(page, "07-mfa-challenge")
    page.fill("input[name=code]", f"{hotp_value(secret, int(time.time()) // 30 + 1):06d}")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live.url}/")
    assert "bob@example.com" in page.locator(".sidebar").inner_text()
    context.close()


def test_provider_agent_knowledge_chat_share_key_and_usage(signed_in, live, scripted_llm, browser):
    page = signed_in

    # Add a provider pointing at the scripted model server; verify it.
    page.goto("/settings/providers")
    shot(page, "10-providers-empty")
    page.fill("#id_name", "Scripted")
    page.select_option("#id_kind", "openai")
    page.fill("#id_base_url", scripted_llm.base_url)
    page.fill("#id_api_key", "sk-scripted-key-0001")
    page.fill("#id_model", "scripted-chat")
    page.fill("#id_embedding_model", "scripted-embed")
    page.click("text=Add provider")
    page.wait_for_selector("text=Provider “Scripted” added.")
    page.click("button:has-text('Verify')")
    page.wait_for_selector("[data-verify=ok]")
    shot(page, "11-providers")

    # A knowledge base; upload a document and watch it reach ready.
    page.goto("/knowledge/")
    page.fill("#id_name", "Handbook")
    page.click("button:has-text('Create')")
    page.wait_for_selector("h1:has-text('Handbook')")
    page.set_input_files(
        "#file-input",
        files=[{"name": "hours.md", "mimeType": "text/markdown",
                "buffer": b"# Opening hours\n\nThe office opens at nine in the morning."}],
    )  # fmt: skip
    page.wait_for_selector("[data-document='hours.md'] [data-status=indexed]")
    page.fill("#search-q", "opening hours")
    page.click("button:has-text('Search')")
    page.wait_for_selector("#hits .citation")
    shot(page, "12-knowledge")

    # An agent with the knowledge base and a tool that needs approval.
    page.goto("/agents/new")
    page.fill("#id_name", "Office helper")
    page.fill("#id_system_prompt", "Answer from the handbook.")
    page.fill("#id_starter_questions", "When does the office open?")
    page.check("label:has-text('Handbook') input")
    page.check("#id_builtin_tools label:has-text('Calculator') input")
    page.check("#id_tools_requiring_approval label:has-text('calculator') input")
    page.click("button:has-text('Create agent')")
    page.wait_for_selector("text=Agent “Office helper” created.")
    shot(page, "13-agent")

    # Chat: a streamed answer in Markdown that cites the document.
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("knowledge_search", {"query": "opening hours"}, id="k1")]),
        Reply(text="The office opens at **nine** [1].", token_delay=0.02),
        "Opening hours",
    )
    page.click("text=Chat with it")
    page.wait_for_selector("text=When does the office open?")
    shot(page, "14-new-chat")
    page.click("button.chip")
    page.click("text=Start chat")
    page.wait_for_selector(".msg-assistant .bubble strong:has-text('nine')")
    page.wait_for_selector(".citation:has-text('hours.md')")
    assert page.locator(".citation").first.inner_text().count("nine in the morning") == 1
    wait_for(lambda: page.locator("#chat-title").inner_text() == "Opening hours")
    shot(page, "15-chat-answer")

    # Reload in the middle of an answer: it resumes without a duplicate or a gap.
    words = " ".join(f"w{i}" for i in range(60))
    scripted_llm.push(Reply(text=words, token_delay=0.05))
    page.fill("#composer-input", "Tell me more")
    page.press("#composer-input", "Enter")
    page.wait_for_function(
        "document.querySelector('.bubble.streaming')?.textContent.includes('w10')"
    )
    page.reload()
    page.wait_for_function("window.lastStreamedAnswer !== undefined", timeout=30_000)
    assert page.evaluate("window.lastStreamedAnswer") == words
    page.wait_for_selector(".msg-assistant .bubble:has-text('w59')")
    assert page.locator(".msg-user .bubble:has-text('Tell me more')").count() == 1
    shot(page, "16-chat-resumed")

    # Approve a tool call from its card.
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"}, id="c1")]),
        "It is **42**.",
    )
    page.fill("#composer-input", "What is 6*7?")
    page.press("#composer-input", "Enter")
    page.wait_for_selector(".approval:has-text('calculator')")
    shot(page, "17-approval")
    page.click(".approval button:has-text('Approve')")
    page.wait_for_selector(".msg-assistant .bubble strong:has-text('42')")
    run = Run.objects.filter(conversation__title="Opening hours").order_by("-created_at").first()
    assert run.decisions == {"c1": True}
    shot(page, "18-approved")

    # Share: the link opens, signed out, as a read-only page.
    page.click("button:has-text('Share')")
    url = page.locator("[data-share-url]").get_attribute("href")
    stranger = browser.new_context()
    public = stranger.new_page()
    public.goto(url)
    assert public.locator("h1").inner_text() == "Opening hours"
    assert public.locator(".msg-assistant strong:has-text('nine')").count() == 1
    assert public.locator("#composer").count() == 0
    shot(public, "19-shared")
    stranger.close()

    # An API key, shown once.
    page.goto("/settings/keys")
    page.fill("#id_name", "laptop")
    page.click("text=Create key")
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("ak_")
    shot(page, "20-api-key")
    page.reload()
    assert secret not in page.content()
    assert page.locator("td:has-text('laptop')").count() == 1

    # Usage shows the exchange, by agent and model name.
    page.goto("/settings/usage")
    assert int(page.locator("[data-stat=calls]").inner_text()) >= 5
    assert page.locator("td:has-text('Office helper')").count() == 1
    assert page.locator("td:has-text('Scripted/scripted-chat')").count() == 1
    shot(page, "21-usage")

    # The conversation list finds it.
    page.goto("/chat/?q=nine")
    assert page.locator(".conv-item:has-text('Opening hours')").count() == 1
    shot(page, "22-chats")

    # Small screen, dark theme: the same conversation stays usable.
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 390, "height": 844})
    page.click(".conv-item:has-text('Opening hours')")
    page.wait_for_selector(".msg-assistant strong:has-text('42')")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 17, 21)"
    shot(page, "23-chat-mobile-dark")


def test_consent_page_for_a_self_registered_client(signed_in, live, workspace):
    """An MCP client registered itself; alice sees it marked unverified and approves."""
    callback = "http://127.0.0.1:33418/callback"
    registered = httpx.post(
        f"{live.url}/oauth/register/",
        json={
            "client_name": "Desk MCP",
            "redirect_uris": [callback],
            "scope": "conversations:read",
        },
    )
    assert registered.status_code == 201, registered.text
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = {
        "response_type": "code",
        "client_id": registered.json()["client_id"],
        "redirect_uri": callback,
        "scope": "conversations:read",
        "state": "s1",
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
    }
    page = signed_in
    # Nothing listens on the client's loopback port: answer its callback in the browser.
    page.route(f"{callback}**", lambda route: route.fulfill(body="<p>Signed in.</p>"))
    page.goto("/oauth/authorize/?" + urlencode(query))
    notice = page.locator("#unverified-client")
    assert "registered itself dynamically" in notice.inner_text()
    assert "http://127.0.0.1:33418" in notice.inner_text()
    assert "Desk MCP" in page.locator("h1").inner_text()
    shot(page, "20-consent-unverified-client")
    page.select_option("#id_workspace", str(workspace.id))
    page.click("input[name=allow]")
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:33418/callback\?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == ["s1"]
    assert answer["iss"] == [live.url]
    assert answer["code"][0]


def test_a_chart_the_code_interpreter_draws_shows_in_the_chat(
    signed_in, live, scripted_llm, workspace, user, http
):
    from apps.agents.models import CodeInterpreterPolicy
    from tests.agents.factories import make_agent
    from tests.files.conftest import make_png
    from tests.providers.factories import make_scripted_provider

    CodeInterpreterPolicy.objects.create(workspace=workspace, enabled=True)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    r = http.post("/api/v1/conversations", json={"agent_id": str(agent.id)})
    conv_id = r.json()["data"]["id"]
    png = base64.b64encode(make_png(5, 3)).decode()
    code = f"import base64\nopen('chart.png', 'wb').write(base64.b64decode({png!r}))"
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("code_interpreter", {"code": code})]), "Here it is.", "Chart"
    )
    page = signed_in
    page.goto(f"/chat/{conv_id}/")
    page.fill("#composer-input", "Draw a chart")
    page.press("#composer-input", "Enter")
    page.wait_for_selector(".msg-assistant .bubble:has-text('Here it is.')", timeout=60_000)
    # Streamed in: the image loaded through the session (its real width), then the same
    # after a reload (rendered by the server from the tool message).
    loaded = "() => [...document.querySelectorAll('.tool-images img')].map(i => i.naturalWidth)"
    wait_for(lambda: page.evaluate(loaded) == [5])
    shot(page, "30-chat-image")
    page.reload()
    wait_for(lambda: page.evaluate(loaded) == [5])
