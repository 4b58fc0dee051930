import pytest
from asgiref.sync import async_to_sync

from apps.skills.mcp_client import POOL
from tests.mcp_server.fixtures import run_mcp_server


@pytest.fixture
def mcp_http(allow_loopback):
    """A running test MCP server over streamable HTTP (reachable through the guard)."""
    with run_mcp_server("http") as server:
        yield server


@pytest.fixture
def mcp_sse(allow_loopback):
    with run_mcp_server("sse") as server:
        yield server


@pytest.fixture
def close_pool():
    """Close pooled MCP sessions opened by a test on its own event loop."""
    yield
    async_to_sync(POOL.aclose)()
