"""A real MCP server built with the official SDK, used by the tests (and reusable by other
apps' tests). Run it as a process:

    python -m tests.mcp_server.server http --port 8765 [--oauth]
    python -m tests.mcp_server.server stdio

Tools: echo, add, structured (structured content), picture (an image), fail (isError),
slow (sleeps), wipe (annotated destructive), crash (kills the process mid-call),
enable_extra (adds the `multiply` tool at runtime, so a refresh discovers it).
"""

import argparse
import asyncio
import base64
import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ImageContent, TextContent, ToolAnnotations

# A 1x1 transparent PNG.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def build_server(**kwargs: Any) -> MCPServer:
    server = MCPServer("test-mcp", instructions="A server for the platform's tests.", **kwargs)

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Weather as structured content.")
    def structured(city: str) -> dict[str, Any]:
        return {"city": city, "temperature_c": 21}

    @server.tool(description="Return a tiny PNG image and a caption.")
    def picture() -> list[Any]:
        return [
            TextContent(type="text", text="a pixel"),
            ImageContent(
                type="image", data=base64.b64encode(PIXEL_PNG).decode(), mime_type="image/png"
            ),
        ]

    @server.tool(
        description="Delete the (pretend) records.",
        annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True),
    )
    def wipe() -> str:
        return "wiped"

    @server.tool(description="Always fails.")
    def fail(reason: str = "boom") -> str:
        raise ToolError(f"failed on purpose: {reason}")

    @server.tool(description="Sleep then answer.")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"

    @server.tool(description="Kill the server process in the middle of the call.")
    async def crash() -> str:
        sys.stdout.flush()
        os._exit(1)

    @server.tool(description="Add the multiply tool to this server.")
    def enable_extra() -> str:
        def multiply(a: int, b: int) -> int:
            return a * b

        server.add_tool(multiply, description="Multiply two integers.")
        return "multiply added"

    @server.prompt(description="Greet someone.")
    def greet(name: str) -> str:
        return f"Say hello to {name}."

    @server.resource("test://readme", description="The server's readme.")
    def readme() -> str:
        return "This is the test server."

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["http", "sse", "stdio"])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--oauth", action="store_true")
    args = parser.parse_args()
    if args.transport == "stdio":
        asyncio.run(build_server().run_stdio_async())
        return
    import uvicorn

    if args.oauth:
        from tests.mcp_server.oauth import build_oauth_server

        server = build_oauth_server(build_server, port=args.port)
    else:
        server = build_server()
    app = server.sse_app() if args.transport == "sse" else server.streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
