"""Tools the run engine provides itself: `current_time`, `calculator` (a safe arithmetic
evaluator over Python's AST: never eval), the conversation's file workspace
(`file_list`, `file_read`, `file_write`, `file_delete`), `attachment_search` over long
attached documents, and `ask_<agent>` tools that call a sub-agent.

Every tool here follows apps/core/tools.py: a ToolSpec whose async `execute(args, ctx)`
returns a ToolResult; a user-visible failure is `ToolResult(is_error=True, ...)`, never an
exception.
"""

import ast
import logging
import math
import operator
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async
from django.urls import reverse

from apps.core.exceptions import ApplicationError
from apps.core.tools import Citation, ToolContext, ToolResult, ToolSpec
from apps.files import services as files
from apps.files.models import File

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# current_time


async def _current_time(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    name = str(args.get("timezone") or "UTC").strip()
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ToolResult(
            content=f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Paris'.",
            is_error=True,
        )
    now = datetime.now(UTC).astimezone(zone)
    iso = now.isoformat(timespec="seconds")
    weekday = now.strftime("%A")
    return ToolResult(
        content=f"{iso} ({weekday}, time zone {name})",
        data={"iso": iso, "weekday": weekday, "timezone": name, "unix": int(now.timestamp())},
    )


CURRENT_TIME = ToolSpec(
    name="current_time",
    description="The current date and time (ISO 8601, with the weekday) in a time zone.",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "IANA time zone name, e.g. 'Europe/Paris'. Default: UTC.",
            }
        },
        "additionalProperties": False,
    },
    source="builtin",
    execute=_current_time,
    ref="builtin:current_time",
)

# ---------------------------------------------------------------------------------------
# calculator

MAX_EXPRESSION_CHARS = 1000
MAX_NODES = 300
MAX_INT_BITS = 20_000  # about 6,000 decimal digits
MAX_FACTORIAL = 1000
MAX_ROUND_DIGITS = 100


class CalculatorError(ValueError):
    """The expression is not something the calculator evaluates."""


def _check(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError("Only real numbers are supported.")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise CalculatorError("The result is too large.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("The result is not a finite number.")
    return value


def _pow(base: int | float, exponent: int | float) -> int | float:
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and abs(base) > 1
        and base.bit_length() * exponent > MAX_INT_BITS * 2
    ):
        raise CalculatorError("The result is too large.")
    try:
        result = operator.pow(base, exponent)
    except OverflowError as exc:
        raise CalculatorError("The result is too large.") from exc
    if isinstance(result, complex):
        raise CalculatorError("The result is not a real number.")
    return result


def _factorial(n: int | float) -> int:
    if isinstance(n, float):
        if not n.is_integer():
            raise CalculatorError("factorial() needs a whole number.")
        n = int(n)
    if n < 0 or n > MAX_FACTORIAL:
        raise CalculatorError(f"factorial() takes a whole number from 0 to {MAX_FACTORIAL}.")
    return math.factorial(n)


def _round(x: int | float, digits: int | float = 0) -> int | float:
    if not float(digits).is_integer() or abs(digits) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round() takes a whole number of digits up to {MAX_ROUND_DIGITS}.")
    return round(x, int(digits)) if digits else round(x)


def _log(x: int | float, base: int | float | None = None) -> float:
    return math.log(x) if base is None else math.log(x, base)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _pow,
    ast.BitXor: _pow,  # "2^10" means a power on a calculator
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": math.sinh,
    "cosh": math.cosh,
    "tanh": math.tanh,
    "degrees": math.degrees,
    "radians": math.radians,
    "hypot": math.hypot,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": _factorial,
    "gcd": math.gcd,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError as exc:
            raise CalculatorError("Division by zero.") from exc
        except OverflowError as exc:
            raise CalculatorError("The result is too large.") from exc
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"Unknown name {node.id!r}.")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = _FUNCTIONS.get(node.func.id)
        if function is None:
            raise CalculatorError(f"Unknown function {node.func.id!r}.")
        if node.keywords:
            raise CalculatorError("Keyword arguments are not supported.")
        args = [_eval(arg) for arg in node.args]
        try:
            return _check(function(*args))
        except TypeError as exc:
            raise CalculatorError(f"Wrong arguments for {node.func.id}().") from exc
        except (ValueError, OverflowError, ZeroDivisionError) as exc:
            if isinstance(exc, CalculatorError):
                raise
            raise CalculatorError(f"{node.func.id}(): {exc}.") from exc
    raise CalculatorError(f"Unsupported syntax: {type(node).__name__}.")


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression (numbers, + - * / // % ** ^, parentheses, the
    functions and constants above). Raises CalculatorError; never runs code."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise CalculatorError("The expression is empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"The expression is longer than {MAX_EXPRESSION_CHARS} characters.")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CalculatorError("The expression is not valid arithmetic.") from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError("The expression is too long.")
    return _eval(tree)


def format_number(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


async def _calculator(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    expression = args.get("expression")
    if not isinstance(expression, str):
        return ToolResult(content="Give the expression as a string.", is_error=True)
    try:
        value = evaluate(expression)
    except CalculatorError as exc:
        return ToolResult(content=f"Cannot evaluate {expression!r}: {exc}", is_error=True)
    result = format_number(value)
    return ToolResult(content=result, data={"expression": expression, "result": result})


CALCULATOR = ToolSpec(
    name="calculator",
    description=(
        "Evaluate an arithmetic expression exactly: + - * / // % ** (or ^), parentheses, "
        "pi, e, sqrt, exp, log(x[, base]), ln, log10, log2, sin, cos, tan, asin, acos, "
        "atan, atan2, sinh, cosh, tanh, degrees, radians, hypot, abs, round(x[, digits]), "
        "floor, ceil, min, max, factorial, gcd. Angles in radians."
    ),
    parameters={
        "type": "object",
        "properties": {
            "expression": {"type": "string", "description": "e.g. '(17.5 * 3) / sqrt(2)'"}
        },
        "required": ["expression"],
        "additionalProperties": False,
    },
    source="builtin",
    execute=_calculator,
    ref="builtin:calculator",
)

# ---------------------------------------------------------------------------------------
# the file workspace of the conversation (apps.files; docs/files.md)
#
# One workspace per conversation: what an agent writes in a conversation stays with it,
# is listed, downloaded and deleted by its user through /api/v1/files?origin=agent, and
# goes with the conversation. Paths are names in the database (bytes are stored under
# ids), confined by files.workspace_path_clean; sizes and counts by FILES_AGENT_*.

FILE_READ_MAX_CHARS = 50_000


def _file_info(file: File) -> dict[str, Any]:
    return {
        "file_id": str(file.id),
        "path": file.path,
        "size": file.size,
        "content_type": file.content_type,
        "url": reverse("file-content", kwargs={"file_id": file.id}),
    }


def _no_conversation() -> ToolResult:
    return ToolResult(content="File tools work inside a conversation only.", is_error=True)


async def _file_list(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    if ctx.conversation_id is None:
        return _no_conversation()
    rows = await sync_to_async(files.workspace_files)(conversation_id=ctx.conversation_id)
    if not rows:
        return ToolResult(content="The workspace is empty.", data={"files": []})
    lines = [f"{f.path} ({f.size} bytes)" for f in rows]
    return ToolResult(content="\n".join(lines), data={"files": [_file_info(f) for f in rows]})


async def _file_read(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    if ctx.conversation_id is None:
        return _no_conversation()
    offset = args.get("offset", 0)
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return ToolResult(content="offset is a whole number of characters >= 0.", is_error=True)
    try:
        file = await sync_to_async(files.workspace_file)(
            conversation_id=ctx.conversation_id, path=args.get("path")
        )
        data = await sync_to_async(files.file_read_bytes)(file=file)
    except ApplicationError as exc:
        return ToolResult(content=exc.message, is_error=True)
    text = data.decode("utf-8", errors="replace")
    chunk = text[offset : offset + FILE_READ_MAX_CHARS]
    more = len(text) - offset - len(chunk)
    if more > 0:
        chunk += f"\n[… {more} more characters: read again with offset={offset + len(chunk)}]"
    return ToolResult(content=chunk, data=_file_info(file))


async def _file_write(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    if ctx.conversation_id is None or ctx.user_id is None:
        return _no_conversation()
    content = args.get("content")
    if not isinstance(content, str):
        return ToolResult(content="Give the content as a string.", is_error=True)
    try:
        file = await sync_to_async(files.workspace_write)(
            workspace_id=ctx.workspace_id,
            owner_id=ctx.user_id,
            conversation_id=ctx.conversation_id,
            path=args.get("path"),
            content=content,
        )
    except ApplicationError as exc:
        return ToolResult(content=exc.message, is_error=True)
    info = _file_info(file)
    return ToolResult(
        content=f"Wrote {file.path} ({file.size} bytes). File id {file.id}; "
        f"download: {info['url']}",
        data={"file": info},
    )


async def _file_delete(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
    if ctx.conversation_id is None:
        return _no_conversation()
    try:
        await sync_to_async(files.workspace_delete)(
            conversation_id=ctx.conversation_id, path=args.get("path")
        )
    except ApplicationError as exc:
        return ToolResult(content=exc.message, is_error=True)
    return ToolResult(content=f"Deleted {args.get('path')}.")


_PATH = {
    "type": "string",
    "description": "A relative path in the workspace, e.g. 'notes/summary.md' (no '..').",
}
FILE_LIST = ToolSpec(
    name="file_list",
    description="List the files of this conversation's file workspace.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    source="builtin",
    execute=_file_list,
    ref="builtin:file_list",
)
FILE_READ = ToolSpec(
    name="file_read",
    description=f"Read a text file of the workspace ({FILE_READ_MAX_CHARS} characters at a time).",
    parameters={
        "type": "object",
        "properties": {
            "path": _PATH,
            "offset": {"type": "integer", "minimum": 0, "description": "Start character."},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
    source="builtin",
    execute=_file_read,
    ref="builtin:file_read",
)
FILE_WRITE = ToolSpec(
    name="file_write",
    description="Create or replace a text file in the workspace; the user can download it.",
    parameters={
        "type": "object",
        "properties": {"path": _PATH, "content": {"type": "string"}},
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    source="builtin",
    execute=_file_write,
    ref="builtin:file_write",
)
FILE_DELETE = ToolSpec(
    name="file_delete",
    description="Delete a file of the workspace.",
    parameters={
        "type": "object",
        "properties": {"path": _PATH},
        "required": ["path"],
        "additionalProperties": False,
    },
    source="builtin",
    execute=_file_delete,
    ref="builtin:file_delete",
)

BUILTIN_TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (CURRENT_TIME, CALCULATOR, FILE_LIST, FILE_READ, FILE_WRITE, FILE_DELETE)
}


# ---------------------------------------------------------------------------------------
# attachment_search (offered when the history has a long attached document)


def attachment_search_spec(
    *, workspace_id: uuid.UUID, documents: Iterable[files.AttachmentContent]
) -> ToolSpec:
    """`attachment_search` over the passages of `documents` (attachments of this
    conversation too long to give inline); its results cite the file and passage."""
    names = {d.file_id: d.name for d in documents}

    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolResult(content="Give a query (a string).", is_error=True)
        wanted = args.get("file_id")
        ids = [str(wanted)] if wanted in names else list(names)
        passages = await sync_to_async(files.attachment_search)(
            workspace_id=workspace_id, file_ids=ids, query=query
        )
        if not passages:
            return ToolResult(content="Nothing in the attached documents matches.")
        blocks = [
            f"[{i}] {p.file_name} (passage {p.position}):\n{p.text}"
            for i, p in enumerate(passages, 1)
        ]
        return ToolResult(
            content="\n\n".join(blocks),
            citations=[
                Citation(
                    document_id=p.file_id,
                    document_name=p.file_name,
                    chunk_id=p.chunk_id,
                    snippet=p.text[:300],
                    score=p.score,
                    position=p.position,
                )
                for p in passages
            ],
        )

    listing = "; ".join(f"{name} (file_id {file_id})" for file_id, name in names.items())
    return ToolSpec(
        name="attachment_search",
        description="Search the long documents attached to this conversation and get the "
        f"passages that match: {listing[:800]}",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "file_id": {
                    "type": "string",
                    "enum": list(names),
                    "description": "Only this document (default: all of them).",
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        source="builtin",
        execute=execute,
        ref="builtin:attachment_search",
    )


def builtin_tool_specs(names: Iterable[str]) -> list[ToolSpec]:
    """The built-in tools among `names` (unknown names are skipped and logged)."""
    specs = []
    for name in names:
        spec = BUILTIN_TOOLS.get(name)
        if spec is None:
            logger.warning("Unknown built-in tool %r skipped", name)
            continue
        specs.append(spec)
    return specs


# ---------------------------------------------------------------------------------------
# sub-agents


@dataclass(frozen=True)
class SubAgentInfo:
    id: uuid.UUID
    name: str
    slug: str
    description: str


SubAgentRunner = Callable[[uuid.UUID, str, ToolContext], Awaitable[ToolResult]]
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def subagent_tool_name(slug: str) -> str:
    """`ask_<slug>`, restricted to what model APIs accept (^[a-zA-Z0-9_-]{1,64}$)."""
    return ("ask_" + _NAME_UNSAFE.sub("_", slug.replace("-", "_")))[:64]


def subagent_tool_specs(
    agents: Iterable[SubAgentInfo], *, runner: SubAgentRunner
) -> list[ToolSpec]:
    """One `ask_<slug>` tool per sub-agent; executing it runs the sub-agent's own turn
    through `runner(agent_id, task, ctx)`."""
    specs = []
    for agent in agents:

        async def execute(
            args: dict[str, Any], ctx: ToolContext, _agent_id: uuid.UUID = agent.id
        ) -> ToolResult:
            task = args.get("task")
            if not isinstance(task, str) or not task.strip():
                return ToolResult(content="Give the sub-agent a task (a string).", is_error=True)
            return await runner(_agent_id, task, ctx)

        description = f'Ask the agent "{agent.name}" to do a task and return its answer.'
        if agent.description:
            description += " " + agent.description[:500]
        specs.append(
            ToolSpec(
                name=subagent_tool_name(agent.slug),
                description=description,
                parameters={
                    "type": "object",
                    "properties": {
                        "task": {
                            "type": "string",
                            "description": "A complete, self-contained request for the agent.",
                        }
                    },
                    "required": ["task"],
                    "additionalProperties": False,
                },
                source="agent",
                execute=execute,
                ref=f"agent:{agent.id}",
            )
        )
    return specs


# ---------------------------------------------------------------------------------------
# code_interpreter and skill_script_run (the sandbox: apps.agents.sandbox, docs/sandbox.md)

CODE_TOOL_MAX_OUTPUT_CHARS = 20_000

CodeRunner = Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]


def format_code_outcome(outcome: dict[str, Any]) -> ToolResult:
    """A sandbox outcome as the model sees it: stdout, stderr, the result and the files
    (with their download links); an error when the code failed or hit a limit."""
    parts: list[str] = []
    status = outcome.get("status")
    if status != "ok":
        parts.append(f"Error ({status}): {outcome.get('error') or 'the execution failed'}")
    for label in ("stdout", "stderr"):
        text = outcome.get(label) or ""
        if text:
            if len(text) > CODE_TOOL_MAX_OUTPUT_CHARS:
                text = text[:CODE_TOOL_MAX_OUTPUT_CHARS] + "\n[… output truncated]"
            parts.append(f"{label}:\n{text.rstrip()}")
    if outcome.get("result") is not None:
        parts.append(f"result: {outcome['result']}")
    files_info = []
    for info in outcome.get("files", []):
        url = reverse("file-content", kwargs={"file_id": info["file_id"]})
        files_info.append({**info, "url": url})
        parts.append(f"file {info['path']} ({info['size']} bytes): {url}")
    for problem in outcome.get("store_errors", []):
        parts.append(f"not saved: {problem}")
    if not parts:
        parts.append("(no output)")
    images = [
        {"file_id": f["file_id"], "path": f["path"], "url": f["url"]}
        for f in files_info
        if f.get("image")
    ]
    return ToolResult(
        content="\n".join(parts),
        is_error=status != "ok",
        data={
            "status": status,
            "result": outcome.get("result"),
            "files": files_info,
            "images": images,
            "duration_ms": outcome.get("duration_ms"),
        },
    )


def code_interpreter_spec(*, runner: CodeRunner, requires_approval: bool) -> ToolSpec:
    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        code = args.get("code")
        if not isinstance(code, str) or not code.strip():
            return ToolResult(content="Give the Python code as a string (code).", is_error=True)
        return format_code_outcome(await runner({"code": code}, ctx))

    return ToolSpec(
        name="code_interpreter",
        description=(
            "Run Python 3 code in an isolated sandbox and get its stdout, stderr and the "
            "value of the last expression. The working directory is this conversation's "
            "file workspace (files you write there are kept and the user can download "
            "them; matplotlib figures are saved as PNG images). No network. Variables do "
            "not persist between calls: files do. numpy is available when installed."
        ),
        parameters={
            "type": "object",
            "properties": {"code": {"type": "string", "description": "Python source."}},
            "required": ["code"],
            "additionalProperties": False,
        },
        source="builtin",
        execute=execute,
        requires_approval=requires_approval,
        ref="builtin:code_interpreter",
    )


def skill_script_spec(
    *, runner: CodeRunner, requires_approval: bool, scripts: dict[str, list[str]]
) -> ToolSpec:
    """`skill_script_run`: a Python script bundled with one of the agent's skills, run in
    the sandbox with the skill's files read-only at /skill."""
    listing = "; ".join(f"{skill}: {', '.join(paths[:20])}" for skill, paths in scripts.items())

    async def execute(args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        skill, script = args.get("skill"), args.get("script")
        if skill not in scripts:
            return ToolResult(content=f"Unknown skill {skill!r}.", is_error=True)
        if script not in scripts[skill]:
            return ToolResult(
                content=f"The skill {skill!r} has no Python script {script!r}.", is_error=True
            )
        arguments = args.get("args") or []
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            return ToolResult(content="args is a list of strings.", is_error=True)
        outcome = await runner({"skill": skill, "script": script, "args": arguments[:50]}, ctx)
        return format_code_outcome(outcome)

    return ToolSpec(
        name="skill_script_run",
        description=(
            "Run a Python script bundled with a skill, in the sandbox (the skill's files "
            "read-only at /skill, the conversation's workspace as working directory). "
            f"Scripts: {listing[:1500]}"
        ),
        parameters={
            "type": "object",
            "properties": {
                "skill": {"type": "string", "enum": list(scripts)},
                "script": {"type": "string", "description": "Path inside the skill."},
                "args": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["skill", "script"],
            "additionalProperties": False,
        },
        source="builtin",
        execute=execute,
        requires_approval=requires_approval,
        ref="builtin:skill_script_run",
    )
