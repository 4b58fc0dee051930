"""Fixtures of the conversation tests: the platform served over real HTTP by an ASGI
server (uvicorn) in a thread of the test process, an agent on the scripted model server,
and SSE helpers."""

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from tests.agents.factories import make_agent
from tests.providers.factories import make_scripted_provider


class LiveASGI:
    """config.asgi.application on 127.0.0.1:<free port>, in a thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Open streams end when the server stops (after a grace period), as in `serve`:
        # a server thread left running would keep serving runs on its event loop.
        config = uvicorn.Config(
            "config.asgi:application",
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def start(self) -> "LiveASGI":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the ASGI server did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        assert not self.thread.is_alive(), "the ASGI server did not stop"


@pytest.fixture
def live(transactional_db, settings):
    """The platform over real HTTP. Tests using it see committed data only
    (transactional_db), like any server."""
    settings.ALLOWED_HOSTS = ["*"]
    server = LiveASGI().start()
    yield server
    server.stop()


@pytest.fixture
def chat_agent(workspace, user, scripted_llm):
    """An agent of the user's workspace answering through the scripted model server."""
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return make_agent(workspace=workspace, user=user, name="Helper", slug="helper")


@pytest.fixture
def http(live, user):
    """An httpx client of the live server signed in as `user` (session cookie)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    client = httpx.Client(
        base_url=live.url,
        cookies={"sessionid": session.session_key, "csrftoken": "x" * 32},
        headers={"X-CSRFToken": "x" * 32, "Referer": live.url + "/"},
        timeout=30,
    )
    yield client
    client.close()


def read_sse(response: httpx.Response, *, stop_type: str | None = "end", limit: int = 10_000):
    """Parse an SSE response into a list of events (the JSON objects), stopping after an
    event of type `stop_type` (or at the end of the body)."""
    events: list[dict[str, Any]] = []
    event_id = None
    data_lines: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data_lines:
                payload = json.loads("\n".join(data_lines))
                if event_id is not None:
                    assert int(event_id) == payload["cursor"]
                events.append(payload)
                data_lines, event_id = [], None
                if (stop_type and payload["type"] == stop_type) or len(events) >= limit:
                    break
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data_lines.append(value)
        elif field == "id":
            event_id = value
    return events


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)
