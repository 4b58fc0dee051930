"""Tools the run engine provides itself: `current_time`, `calculator` (a safe arithmetic
evaluator over Python's AST: never eval), and `ask_<agent>` tools that call a sub-agent.

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

from apps.core.tools import ToolContext, ToolResult, ToolSpec

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

BUILTIN_TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (CURRENT_TIME, CALCULATOR)}


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
