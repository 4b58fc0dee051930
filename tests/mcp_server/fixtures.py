"""Start the test MCP server (tests/mcp_server/server.py) as a real process."""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the test MCP server did not listen on {port}")


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def run_mcp_server(
    transport: str = "http", *, oauth: bool = False, port: int | None = None
) -> Iterator[RunningServer]:
    """The test server over streamable HTTP ("http", at /mcp) or SSE ("sse", at /sse)."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "tests.mcp_server.server", transport, "--port", str(port)]
    if oauth:
        cmd.append("--oauth")
    process = subprocess.Popen(cmd, cwd=ROOT)
    server = RunningServer(process, port, "/mcp" if transport == "http" else "/sse")
    try:
        wait_for_port(port)
        yield server
    finally:
        server.stop()


def stdio_command_args() -> tuple[str, list[str], str]:
    """(command, args, cwd) that run the test server over stdio."""
    return sys.executable, ["-m", "tests.mcp_server.server", "stdio"], str(ROOT)
