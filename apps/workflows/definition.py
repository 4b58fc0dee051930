"""A workflow definition: its shape, its validation, and its expression language.

A definition is JSON: `{"steps": [<step>, ...]}`. Every step has an `id`
(`^[a-z][a-z0-9_]{0,63}$`), a `type` (`choices.StepType`), and optionally `after` (the
ids of the steps it waits for), `timeout_seconds`, `retry` (`{"max_attempts",
"backoff_seconds"}`) and `continue_on_error`. A condition step's `then` / `else` lists
are edges too. Exactly one `start` step, at least one `end` step.

Expressions are Jinja2 templates rendered in Jinja2's `SandboxedEnvironment` (never
`eval`): `{{ inputs.question }}`, `{{ steps.retrieve.output.chunks }}`, `{{ item }}` in a
loop body. A string that is exactly one `{{ ... }}` evaluates to the value itself (a
list stays a list); any other string renders to text.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from apps.core.exceptions import ErrorDetail
from apps.workflows.choices import StepType
from apps.workflows.exceptions import InvalidDefinition, InvalidInputs

STEP_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_STEPS = 200
LOOP_MAX_ITEMS = 100
MAX_TIMEOUT_SECONDS = 3600
DEFAULT_TIMEOUT_SECONDS = 120
MAX_ATTEMPTS = 5
MAX_TEMPLATE_CHARS = 20_000
MAX_SUB_WORKFLOW_DEPTH = 3
INPUT_TYPES = ("string", "number", "integer", "boolean", "object", "array")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
# The types an expression result is declared to have, by step type and field.
_EXPECTS: dict[tuple[str, str], str] = {("loop", "items"): "array"}
_SIMPLE_EXPR = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)

env = ImmutableSandboxedEnvironment(autoescape=False)


class ExpressionError(Exception):
    """An expression that does not render (undefined value, sandbox refusal, syntax)."""


# --- the expression language ---------------------------------------------------------------


def _is_single_expression(text: str) -> str | None:
    match = _SIMPLE_EXPR.match(text)
    if match is None or "{{" in match.group(1) or "{%" in text:
        return None
    return match.group(1)


def evaluate(value: Any, context: Mapping[str, Any]) -> Any:
    """`value` with every string rendered against `context` (dicts and lists walked). A
    string that is one `{{ expr }}` gives the expression's value. Raises ExpressionError."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            single = _is_single_expression(value)
            if single is not None:
                return env.compile_expression(single, undefined_to_none=False)(**context)
            return env.from_string(value).render(**context)
        except (TemplateSyntaxError, SecurityError, UndefinedError, TypeError) as exc:
            raise ExpressionError(str(exc)) from exc
        except (ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}") from exc
    if isinstance(value, dict):
        return {k: evaluate(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, context) for v in value]
    return value


def truthy(value: Any) -> bool:
    """A condition's result: false for false, empty, zero, None and the strings
    "false", "no", "0", "" (any case)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "no", "0", "none", "null")
    return bool(value)


@dataclass(frozen=True)
class Reference:
    root: str  # "inputs" | "steps" | another name
    name: str | None  # the input or step id


def _references(text: str) -> Iterator[Reference]:
    """The `inputs.X` and `steps.X` references of a template. Raises TemplateSyntaxError."""
    single = _is_single_expression(text)
    source = f"{{{{ {single} }}}}" if single is not None else text
    tree = env.parse(source)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name):
            key: Any = node.attr if isinstance(node, nodes.Getattr) else None
            if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
                key = node.arg.value
            if isinstance(key, str):
                yield Reference(node.node.name, key)
        elif isinstance(node, nodes.Name) and node.ctx == "load":
            yield Reference(node.name, None)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


# --- validation ------------------------------------------------------------------------------


@dataclass
class Graph:
    """A validated definition: steps by id, their dependencies and dependents."""

    steps: dict[str, dict[str, Any]]
    deps: dict[str, list[str]]
    children: dict[str, list[str]]
    order: list[str]  # a topological order

    @property
    def start(self) -> dict[str, Any]:
        return next(s for s in self.steps.values() if s["type"] == StepType.START)

    def branch_of(self, condition_id: str, step_id: str) -> str | None:
        """ "then"/"else" when `step_id` hangs on that branch of the condition, else None."""
        cond = self.steps[condition_id]
        if step_id in (cond.get("then") or []):
            return "then"
        if step_id in (cond.get("else") or []):
            return "else"
        return None


@dataclass
class Lookups:
    """What validation checks ids against: the ids of the workspace's agents, tools,
    knowledge bases and workflows (None: not checked)."""

    agents: set[str] | None = None
    tools: set[str] | None = None
    knowledge_bases: set[str] | None = None
    workflows: set[str] | None = None
    models: set[str] | None = None


# The fields each step type needs (beyond id/type), and the optional ones.
_REQUIRED: dict[str, tuple[str, ...]] = {
    StepType.START: (),
    StepType.AGENT: ("agent_id", "prompt"),
    StepType.MODEL_CALL: ("prompt",),
    StepType.KNOWLEDGE_RETRIEVAL: ("knowledge_base_ids", "query"),
    StepType.TOOL_CALL: ("tool_id",),
    StepType.HTTP_REQUEST: ("url",),
    StepType.CONDITION: ("if",),
    StepType.LOOP: ("items", "body"),
    StepType.TEMPLATE: (),
    StepType.APPROVAL: (),
    StepType.SUB_WORKFLOW: ("workflow_id",),
    StepType.END: (),
}
_LOOP_BODY_TYPES = (
    StepType.TEMPLATE,
    StepType.MODEL_CALL,
    StepType.TOOL_CALL,
    StepType.HTTP_REQUEST,
    StepType.KNOWLEDGE_RETRIEVAL,
    StepType.AGENT,
)
_COMMON = {"id", "type", "name", "after", "timeout_seconds", "retry", "continue_on_error"}
_OPTIONAL: dict[str, set[str]] = {
    StepType.START: {"inputs"},
    StepType.AGENT: set(),
    StepType.MODEL_CALL: {"model_id", "system", "output_schema", "temperature", "max_tokens"},
    StepType.KNOWLEDGE_RETRIEVAL: {"top_k"},
    StepType.TOOL_CALL: {"arguments"},
    StepType.HTTP_REQUEST: {"method", "headers", "body"},
    StepType.CONDITION: {"then", "else"},
    StepType.LOOP: {"max_items"},
    StepType.TEMPLATE: {"template", "value"},
    StepType.APPROVAL: {"message"},
    StepType.SUB_WORKFLOW: {"inputs"},
    StepType.END: {"outputs"},
}
_TEMPLATE_FIELDS = {
    StepType.AGENT: ("prompt",),
    StepType.MODEL_CALL: ("prompt", "system"),
    StepType.KNOWLEDGE_RETRIEVAL: ("query",),
    StepType.TOOL_CALL: ("arguments",),
    StepType.HTTP_REQUEST: ("url", "headers", "body"),
    StepType.CONDITION: ("if",),
    StepType.LOOP: ("items",),
    StepType.TEMPLATE: ("template", "value"),
    StepType.APPROVAL: ("message",),
    StepType.SUB_WORKFLOW: ("inputs",),
    StepType.END: ("outputs",),
}


class _Errors:
    def __init__(self) -> None:
        self.items: list[ErrorDetail] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})


def _field(step_id: str | None, index: int, name: str | None = None) -> str:
    base = f"steps.{step_id}" if step_id else f"steps[{index}]"
    return f"{base}.{name}" if name else base


def _check_step_fields(step: dict[str, Any], index: int, errors: _Errors) -> None:
    sid = step["id"]
    stype = step["type"]
    for name in _REQUIRED[stype]:
        if step.get(name) in (None, "", []):
            errors.add(_field(sid, index, name), f"A {stype} step needs `{name}`.")
    for name in step:
        if name not in _COMMON and name not in _OPTIONAL[stype] and name not in _REQUIRED[stype]:
            errors.add(_field(sid, index, name), f"Unknown field for a {stype} step.")
    after = step.get("after", [])
    if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
        errors.add(_field(sid, index, "after"), "`after` is a list of step ids.")
    timeout = step.get("timeout_seconds")
    if timeout is not None and (
        not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        errors.add(
            _field(sid, index, "timeout_seconds"),
            f"timeout_seconds is a number in (0, {MAX_TIMEOUT_SECONDS}].",
        )
    retry = step.get("retry")
    if retry is not None:
        attempts = retry.get("max_attempts", 1) if isinstance(retry, dict) else None
        backoff = retry.get("backoff_seconds", 0) if isinstance(retry, dict) else None
        if (
            not isinstance(attempts, int)
            or not 1 <= attempts <= MAX_ATTEMPTS
            or not isinstance(backoff, int | float)
            or not 0 <= backoff <= 60
        ):
            errors.add(
                _field(sid, index, "retry"),
                f"retry is {{max_attempts: 1..{MAX_ATTEMPTS}, backoff_seconds: 0..60}}.",
            )
    for name in ("continue_on_error",):
        if name in step and not isinstance(step[name], bool):
            errors.add(_field(sid, index, name), f"{name} is a boolean.")
    if stype == StepType.START:
        inputs = step.get("inputs", {})
        if not isinstance(inputs, dict):
            errors.add(_field(sid, index, "inputs"), "inputs maps names to {type, required}.")
        else:
            for name, spec in inputs.items():
                where = _field(sid, index, f"inputs.{name}")
                if not STEP_ID.match(name):
                    errors.add(where, "An input name is lowercase letters, digits and _.")
                if not isinstance(spec, dict) or spec.get("type", "string") not in INPUT_TYPES:
                    errors.add(where, f"type is one of {', '.join(INPUT_TYPES)}.")
    if stype == StepType.LOOP:
        body = step.get("body")
        if body is not None and (
            not isinstance(body, dict) or body.get("type") not in _LOOP_BODY_TYPES
        ):
            errors.add(
                _field(sid, index, "body.type"),
                "A loop body is a template, model_call, tool_call, http_request, "
                "knowledge_retrieval or agent step.",
            )
        max_items = step.get("max_items", LOOP_MAX_ITEMS)
        if not isinstance(max_items, int) or not 1 <= max_items <= LOOP_MAX_ITEMS:
            errors.add(_field(sid, index, "max_items"), f"max_items is 1..{LOOP_MAX_ITEMS}.")
    if stype == StepType.HTTP_REQUEST and step.get("method", "GET") not in HTTP_METHODS:
        errors.add(_field(sid, index, "method"), f"method is one of {', '.join(HTTP_METHODS)}.")
    if stype == StepType.KNOWLEDGE_RETRIEVAL:
        kb_ids = step.get("knowledge_base_ids")
        if kb_ids is not None and not (
            isinstance(kb_ids, list) and all(isinstance(x, str) for x in kb_ids)
        ):
            errors.add(_field(sid, index, "knowledge_base_ids"), "A list of ids.")
        top_k = step.get("top_k", 5)
        if not isinstance(top_k, int) or not 1 <= top_k <= 50:
            errors.add(_field(sid, index, "top_k"), "top_k is 1..50.")
    if stype == StepType.TEMPLATE and "template" not in step and "value" not in step:
        errors.add(_field(sid, index, "template"), "A template step needs `template` or `value`.")
    if stype == StepType.MODEL_CALL and not isinstance(step.get("output_schema", {}), dict):
        errors.add(_field(sid, index, "output_schema"), "output_schema is a JSON Schema.")
    if stype == StepType.CONDITION:
        for name in ("then", "else"):
            branch = step.get(name, [])
            if not isinstance(branch, list) or not all(isinstance(a, str) for a in branch):
                errors.add(_field(sid, index, name), f"`{name}` is a list of step ids.")


def _check_lookups(step: dict[str, Any], lookups: Lookups, errors: _Errors, index: int) -> None:
    sid = step["id"]
    body = step.get("body") if step["type"] == StepType.LOOP else None
    for owner, prefix in ((step, ""), (body, "body.")):
        if not isinstance(owner, dict):
            continue
        checks = (
            ("agent_id", lookups.agents, "agent"),
            ("tool_id", lookups.tools, "tool"),
            ("workflow_id", lookups.workflows, "workflow"),
            ("model_id", lookups.models, "model"),
        )
        for name, known, label in checks:
            value = owner.get(name)
            if value is not None and known is not None and str(value) not in known:
                errors.add(
                    _field(sid, index, prefix + name), f"No {label} {value} in this workspace."
                )
        kb_ids = owner.get("knowledge_base_ids")
        if isinstance(kb_ids, list) and lookups.knowledge_bases is not None:
            for i, kb in enumerate(kb_ids):
                if str(kb) not in lookups.knowledge_bases:
                    errors.add(
                        _field(sid, index, f"{prefix}knowledge_base_ids[{i}]"),
                        f"No knowledge base {kb} in this workspace.",
                    )


def validate_definition(definition: Any, *, lookups: Lookups | None = None) -> Graph:
    """The definition as a Graph. Raises InvalidDefinition with one detail per problem,
    each naming the step and field (`steps.<id>.<field>`)."""
    errors = _Errors()
    if not isinstance(definition, dict) or not isinstance(definition.get("steps"), list):
        raise InvalidDefinition('A definition is {"steps": [...]}.', field="definition.steps")
    raw_steps: list[Any] = definition["steps"]
    for key in definition:
        if key not in ("steps", "description"):
            errors.add(f"definition.{key}", "Unknown field of a definition.")
    if not raw_steps:
        errors.add("definition.steps", "A workflow has at least a start and an end step.")
    if len(raw_steps) > MAX_STEPS:
        raise InvalidDefinition(f"At most {MAX_STEPS} steps.", field="definition.steps")
    steps: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(raw_steps):
        if not isinstance(step, dict):
            errors.add(_field(None, index), "A step is an object.")
            continue
        sid = step.get("id")
        if not isinstance(sid, str) or not STEP_ID.match(sid):
            errors.add(_field(None, index, "id"), "id is lowercase letters, digits and _ .")
            continue
        if sid in steps:
            errors.add(_field(sid, index, "id"), f"Two steps are named {sid}.")
            continue
        stype = step.get("type")
        if stype not in StepType.values:
            errors.add(_field(sid, index, "type"), f"Unknown step type {stype!r}.")
            steps[sid] = step  # kept in the graph, so what refers to it is not an error
            continue
        steps[sid] = step
        _check_step_fields(step, index, errors)
        if lookups is not None:
            _check_lookups(step, lookups, errors, index)
    starts = [s for s in steps.values() if s["type"] == StepType.START]
    if len(starts) != 1:
        errors.add("definition.steps", "A workflow has exactly one start step.")
    if not any(s["type"] == StepType.END for s in steps.values()):
        errors.add("definition.steps", "A workflow has at least one end step.")

    deps: dict[str, list[str]] = {sid: [] for sid in steps}
    index_of = {sid: i for i, sid in enumerate(steps)}
    for sid, step in steps.items():
        for dep in step.get("after", []):
            if dep not in steps:
                errors.add(_field(sid, index_of[sid], "after"), f"No step {dep!r}.")
            elif dep not in deps[sid]:
                deps[sid].append(dep)
        if step["type"] == StepType.CONDITION:
            for name in ("then", "else"):
                for target in step.get(name, []):
                    if target not in steps:
                        errors.add(_field(sid, index_of[sid], name), f"No step {target!r}.")
                    elif sid not in deps[target]:
                        deps[target].append(sid)
        if step["type"] == StepType.START and deps[sid]:
            errors.add(_field(sid, index_of[sid], "after"), "The start step comes first.")
    if len(starts) != 1:
        raise InvalidDefinition(details=errors.items)
    children: dict[str, list[str]] = {sid: [] for sid in steps}
    for sid, ds in deps.items():
        for dep in ds:
            children[dep].append(sid)
    # Cycles (Kahn's algorithm): what never reaches in-degree 0 is on or behind a cycle.
    indegree = {sid: len(ds) for sid, ds in deps.items()}
    queue = deque(sid for sid, n in indegree.items() if n == 0)
    order: list[str] = []
    while queue:
        sid = queue.popleft()
        order.append(sid)
        for child in children[sid]:
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if len(order) != len(steps):
        for sid in steps:
            if sid not in order:
                errors.add(_field(sid, index_of[sid], "after"), "The step is part of a cycle.")
        raise InvalidDefinition(details=errors.items)
    start_id = starts[0]["id"]
    reachable = {start_id}
    for sid in order:
        if sid != start_id and any(d in reachable for d in deps[sid]):
            reachable.add(sid)
    for sid in steps:
        if sid not in reachable:
            errors.add(
                _field(sid, index_of[sid], "after"),
                "The step is unreachable from the start step (add it to `after`).",
            )
    graph = Graph(steps=steps, deps=deps, children=children, order=order)
    _check_references(graph, errors, index_of)
    if errors.items:
        raise InvalidDefinition(details=errors.items)
    return graph


def ancestors(graph: Graph, sid: str) -> set[str]:
    seen: set[str] = set()
    stack = list(graph.deps[sid])
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(graph.deps[dep])
    return seen


def _check_references(graph: Graph, errors: _Errors, index_of: dict[str, int]) -> None:
    declared = graph.start.get("inputs", {}) or {}
    for sid, step in graph.steps.items():
        before = ancestors(graph, sid)
        sources: list[tuple[str, Any]] = [
            (name, step.get(name)) for name in _TEMPLATE_FIELDS.get(step["type"], ())
        ]
        if step["type"] == StepType.LOOP and isinstance(step.get("body"), dict):
            body = step["body"]
            for name in _TEMPLATE_FIELDS.get(body.get("type"), ()):
                sources.append((f"body.{name}", body.get(name)))
        for name, value in sources:
            for path, text in _strings(value, name):
                if len(text) > MAX_TEMPLATE_CHARS:
                    errors.add(_field(sid, index_of[sid], path), "The template is too long.")
                    continue
                try:
                    refs = list(_references(text))
                except TemplateSyntaxError as exc:
                    errors.add(_field(sid, index_of[sid], path), f"Template syntax: {exc}.")
                    continue
                for ref in refs:
                    where = _field(sid, index_of[sid], path)
                    if ref.root == "inputs" and ref.name is not None and ref.name not in declared:
                        errors.add(where, f"inputs.{ref.name} is not an input of the start step.")
                    elif ref.root == "steps" and ref.name is not None:
                        if ref.name not in graph.steps:
                            errors.add(where, f"steps.{ref.name} is not a step.")
                        elif ref.name not in before:
                            errors.add(where, f"steps.{ref.name} does not run before this step.")
                    elif ref.root not in ("inputs", "steps", "item", "index", "run") and (
                        ref.name is None
                        and ref.root not in env.globals
                        and not name.startswith("body.")
                    ):
                        errors.add(where, f"Unknown name {ref.root!r} (use inputs.* or steps.*).")
                expected = _EXPECTS.get((str(step["type"]), name))
                single = _is_single_expression(text)
                if expected and single is not None:
                    match = re.fullmatch(r"\s*inputs\.([a-z][a-z0-9_]*)\s*", single)
                    if match and match.group(1) in declared:
                        got = declared[match.group(1)].get("type", "string")
                        if got != expected:
                            errors.add(
                                where_of(sid, index_of, name),
                                f"Expects an {expected}; inputs.{match.group(1)} is a {got}.",
                            )


def where_of(sid: str, index_of: dict[str, int], name: str) -> str:
    return _field(sid, index_of[sid], name)


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_inputs(graph: Graph, inputs: Any) -> dict[str, Any]:
    """The run's inputs checked against the start step's declared inputs (required,
    type, unknown names; defaults filled). Raises InvalidInputs naming `inputs.<name>`."""
    if not isinstance(inputs, dict):
        raise InvalidInputs("inputs is an object.", field="inputs")
    declared: dict[str, Any] = graph.start.get("inputs", {}) or {}
    errors = _Errors()
    out: dict[str, Any] = {}
    for name in inputs:
        if name not in declared:
            errors.add(f"inputs.{name}", "Not an input of the workflow.")
    for name, spec in declared.items():
        if name not in inputs:
            if spec.get("required", False):
                errors.add(f"inputs.{name}", "This input is required.")
            elif "default" in spec:
                out[name] = spec["default"]
            continue
        value = inputs[name]
        kind = spec.get("type", "string")
        ok = isinstance(value, _PY_TYPES[kind]) and not (
            kind in ("number", "integer") and isinstance(value, bool)
        )
        if not ok:
            errors.add(f"inputs.{name}", f"Expected a {kind}.")
        out[name] = value
    if errors.items:
        raise InvalidInputs(details=errors.items)
    return out


def start_input_schema(start_inputs: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments from a start step's declared inputs."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in start_inputs.items():
        prop: dict[str, Any] = {"type": spec.get("type", "string")}
        if spec.get("description"):
            prop["description"] = str(spec["description"])
        if "default" in spec:
            prop["default"] = spec["default"]
        properties[name] = prop
        if spec.get("required", False):
            required.append(name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema
