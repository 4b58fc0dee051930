"""Fixtures of the agents tests: the live server and its signed-in client come from the
conversations tests (the code interpreter runs over real HTTP); `canary` is an HTTP
server on loopback that records every request it gets (the sandbox must never reach it)."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conversations.conftest import http, live  # noqa: F401 (fixtures)


class _Canary(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"canary")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[ThreadingHTTPServer]:
    """The canary server: `.server_address[1]` its port, `.hits` the paths it was asked."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
