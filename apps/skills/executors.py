"""How registry tools run: built-in HTTP request and web fetch, OpenAPI operations, MCP
tools, and the skill tools (`load_skill`, `read_skill_file`). Every executor is async,
validates its arguments against the tool's JSON Schema, and returns a ToolResult: errors
are results (is_error=True), never exceptions."""

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from bs4 import BeautifulSoup
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from apps.core.exceptions import ApplicationError
from apps.core.outbound import OutboundResponse, afetch
from apps.core.tools import ToolContext, ToolExecutor, ToolResult
from apps.skills.mcp_client import POOL, McpConfig, call_tool_once

HTTP_MAX_BYTES = 2_000_000
HTTP_TIMEOUT = 20.0
MAX_TOOL_CHARS = 50_000

HTTP_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "description": "Absolute http(s) URL."},
        "method": {
            "type": "string",
            "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
            "default": "GET",
        },
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "Request body (text or JSON text)."},
    },
    "required": ["url"],
    "additionalProperties": False,
}

WEB_FETCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "description": "Absolute http(s) URL of the page."},
        "max_chars": {"type": "integer", "minimum": 100, "maximum": MAX_TOOL_CHARS},
    },
    "required": ["url"],
    "additionalProperties": False,
}


def argument_errors(schema: Mapping[str, Any], arguments: Any) -> list[dict[str, str]]:
    """Each way `arguments` breaks `schema`, as error details ({field, message})."""
    try:
        validator = Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
    except SchemaError as exc:
        return [{"field": "", "message": f"The tool's schema is invalid: {exc.message}"}]
    return [
        {"field": ".".join(str(p) for p in e.path) or "arguments", "message": e.message}
        for e in errors
    ]


def validating(schema: Mapping[str, Any], run: ToolExecutor) -> ToolExecutor:
    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        if not isinstance(args, dict):
            return ToolResult(content="Arguments must be a JSON object.", is_error=True)
        errors = argument_errors(schema, args)
        if errors:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            return ToolResult(content=f"Invalid arguments: {detail}", is_error=True)
        return await run(args, ctx)

    return execute


def _truncate(text: str, limit: int = MAX_TOOL_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[truncated]"


def _response_result(response: OutboundResponse) -> ToolResult:
    return ToolResult(
        content=_truncate(f"HTTP {response.status_code}\n{response.text}"),
        is_error=response.status_code >= 400,
        data={
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "url": response.url,
        },
    )


async def _guarded(call: Any) -> OutboundResponse | ToolResult:
    try:
        return await call  # type: ignore[no-any-return]
    except ApplicationError as exc:  # OutboundBlocked / OutboundError: the call's failure
        return ToolResult(content=exc.message, is_error=True)


async def run_http_request(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    body = args.get("body")
    result = await _guarded(
        afetch(
            args["url"],
            method=args.get("method", "GET"),
            headers=args.get("headers") or {},
            content=body.encode() if isinstance(body, str) else None,
            timeout=HTTP_TIMEOUT,
            max_bytes=HTTP_MAX_BYTES,
        )
    )
    return result if isinstance(result, ToolResult) else _response_result(result)


def html_to_text(html: str) -> tuple[str, str]:
    """(title, readable text) of an HTML page: scripts, styles and navigation dropped."""
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "nav", "footer"]):
        tag.decompose()
    text = soup.get_text("\n")
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    return title, "\n".join(line for line in lines if line)


async def run_web_fetch(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    result = await _guarded(afetch(args["url"], timeout=HTTP_TIMEOUT, max_bytes=HTTP_MAX_BYTES))
    if isinstance(result, ToolResult):
        return result
    limit = int(args.get("max_chars") or 20_000)
    ctype = result.headers.get("content-type", "")
    if result.status_code >= 400:
        return ToolResult(content=f"HTTP {result.status_code} fetching the page.", is_error=True)
    if "html" in ctype or result.text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        title, text = html_to_text(result.text)
        content = f"# {title}\n\n{text}" if title else text
    elif ctype.startswith("text/") or "json" in ctype or "xml" in ctype or not ctype:
        content = result.text
    else:
        return ToolResult(content=f"Not a text page ({ctype}).", is_error=True)
    return ToolResult(
        content=_truncate(content, limit), data={"url": result.url, "content_type": ctype}
    )


def openapi_executor(
    *, base_url: str, operation: Mapping[str, Any], auth: Mapping[str, str]
) -> ToolExecutor:
    """Call one imported operation: path/query/header parameters by location, `body` as
    JSON, credentials added per the source's auth type."""

    async def run(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = str(operation["path"])
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for param in operation.get("parameters", []):
            name, where = param["name"], param["in"]
            if name not in args:
                continue
            value = args[name]
            if where == "path":
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "query":
                query[name] = value if not isinstance(value, bool) else str(value).lower()
            elif where == "header":
                headers[name] = str(value)
        if auth.get("type") == "bearer":
            headers["Authorization"] = f"Bearer {auth['credential']}"
        elif auth.get("type") == "header":
            headers[auth["name"]] = auth["credential"]
        elif auth.get("type") == "query":
            query[auth["name"]] = auth["credential"]
        url = base_url.rstrip("/") + path
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query, doseq=True)
        content = None
        if "body" in args:
            content = json.dumps(args["body"]).encode()
            headers["Content-Type"] = "application/json"
        result = await _guarded(
            afetch(
                url,
                method=str(operation["method"]).upper(),
                headers=headers,
                content=content,
                timeout=HTTP_TIMEOUT,
                max_bytes=HTTP_MAX_BYTES,
                follow_redirects=False,
            )
        )
        return result if isinstance(result, ToolResult) else _response_result(result)

    return run


def mcp_executor(*, config: McpConfig, remote_name: str, pooled: bool = True) -> ToolExecutor:
    async def run(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        if pooled:
            return await POOL.call_tool(config, remote_name, args)
        return await call_tool_once(config, remote_name, args)

    return run
