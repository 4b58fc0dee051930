from tests.conversations.conftest import chat_agent, http, live  # noqa: F401
