"""A real headless Chromium: an EventSource whose connection drops mid-run reconnects with
Last-Event-ID and loses nothing (every event once, in order).

The page is served by the test (Playwright fulfils its URL on the platform's origin); a
TCP proxy in front of the platform cuts the first stream connection mid-run."""

import contextlib
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from apps.conversations.models import Run
from apps.core.events import EventType
from apps.providers.scripted import Reply
from tests.conversations.conftest import read_sse, wait_for

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium(monkeypatch):
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI never skips the browser tests")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # (fixtures, assertions) are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


class CuttingProxy:
    """Forwards TCP to the platform; the first response carrying text/event-stream is cut
    after `cut_after` bytes (the client sees a dropped connection)."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.cuts = 0
        self.stream_requests: list[bytes] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        first = client.recv(65536)
        is_stream = b"/stream" in first.split(b"\r\n", 1)[0]
        if is_stream:
            self.stream_requests.append(first)
        upstream.sendall(first)
        cut = is_stream and self.cuts == 0
        if cut:
            self.cuts += 1

        def up() -> None:
            try:
                while data := client.recv(65536):
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=up, daemon=True).start()
        sent = 0
        try:
            while data := upstream.recv(65536):
                if cut and sent + len(data) > self.cut_after:
                    client.sendall(data[: max(self.cut_after - sent, 0)])
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


PAGE = """<!doctype html><html><body><script>
window.events = []; window.opens = 0; window.done = false;
const es = new EventSource(%(url)s);
es.onopen = () => { window.opens += 1; };
for (const type of %(types)s) {
  es.addEventListener(type, (e) => {
    const ev = JSON.parse(e.data);
    window.events.push(ev);
    if (ev.type === "end") { window.done = true; es.close(); }
  });
}
</script></body></html>"""


def test_eventsource_reconnects_with_last_event_id_and_loses_nothing(
    chromium, live, http, chat_agent, scripted_llm
):
    words = " ".join(f"b{i}" for i in range(50))
    scripted_llm.push(Reply(text=words, token_delay=0.04), "Title")
    conv = http.post("/api/v1/conversations", json={"agent_id": "helper"}).json()["data"]["id"]
    run = http.post(f"/api/v1/conversations/{conv}/messages", json={"content": "go"}).json()["data"]
    proxy = CuttingProxy(live.port, cut_after=2500)
    origin = f"http://127.0.0.1:{proxy.port}"
    try:
        context = chromium.new_context()
        context.add_cookies(
            [{"name": "sessionid", "value": http.cookies["sessionid"], "url": origin}]
        )
        page = context.new_page()
        html = PAGE % {
            "url": json.dumps(f"/api/v1/runs/{run['id']}/stream"),
            "types": json.dumps([str(t) for t in EventType]),
        }
        page.route(
            f"{origin}/e2e/page",
            lambda route: route.fulfill(status=200, content_type="text/html", body=html),
        )
        page.goto(f"{origin}/e2e/page")
        page.wait_for_function("window.done === true", timeout=30_000)
        received = page.evaluate("window.events")
        opens = page.evaluate("window.opens")
        context.close()
    finally:
        proxy.close()

    wait_for(lambda: Run.objects.get(id=run["id"]).status == "completed")
    whole = read_sse(http.get(f"/api/v1/runs/{run['id']}/stream?cursor=-1"))
    assert proxy.cuts == 1 and opens >= 2
    # The browser's reconnection carried the last id it had seen.
    assert any(b"last-event-id:" in r.lower() for r in proxy.stream_requests[1:])
    assert [e["cursor"] for e in received] == [e["cursor"] for e in whole]
    assert received == whole
    assert "".join(e["data"]["delta"] for e in received if e["type"] == "answer.delta") == words
