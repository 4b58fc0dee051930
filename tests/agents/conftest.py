"""Fixtures of the agents tests: the live server and its signed-in client come from the
conversations tests (the code interpreter runs over real HTTP)."""

from tests.conversations.conftest import http, live  # noqa: F401 (fixtures)
