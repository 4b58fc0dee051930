"""Bounded parsing of untrusted JSON, YAML and XML: the one place that limits nesting.

Every parser of text a user sent goes through here, so a deeply nested document, a YAML
alias bomb or an XML entity bomb is refused with a readable `UntrustedInputError` (a
`ValueError`) instead of a RecursionError, a memory blow-up or a hung worker.
"""

import io
import json
import re
from typing import Any

import defusedxml.ElementTree as SafeElementTree
import yaml
from defusedxml import DefusedXmlException

# Nesting deeper than this is refused by default: no real document, front matter or
# configuration comes close, and every parser here stays far from Python's recursion limit.
DEFAULT_MAX_DEPTH = 100

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class UntrustedInputError(ValueError):
    """Input refused before or while parsing; the message is readable as is."""


def check_json_depth(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise UntrustedInputError if JSON `text` nests arrays/objects deeper than `max_depth`.

    Counts brackets outside string literals without building anything, so it is safe on
    any input (it does not validate the JSON)."""
    depth = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                raise UntrustedInputError(f"It is nested deeper than {max_depth} levels.")
        else:
            depth -= 1


def json_loads(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`json.loads` with bounded nesting. Raises UntrustedInputError (too deep) or
    ValueError (not JSON)."""
    check_json_depth(text, max_depth=max_depth)
    return json.loads(text)


class _BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases and bounds nesting while composing."""

    max_depth = DEFAULT_MAX_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise UntrustedInputError(
                f"YAML anchors and aliases are not allowed (line {event.start_mark.line + 1})."
            )
        self._depth += 1
        if self._depth > self.max_depth:
            raise UntrustedInputError(f"It is nested deeper than {self.max_depth} levels.")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def yaml_load(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`yaml.safe_load` without anchors/aliases and with bounded nesting. Raises
    UntrustedInputError (alias, anchor, too deep) or yaml.YAMLError (not YAML)."""
    loader_class = type("_Loader", (_BoundedSafeLoader,), {"max_depth": max_depth})
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_xml(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH * 2) -> None:
    """Parse XML `data` with a hardened parser (no DTD, no entities, no external
    references) and bounded nesting. Raises UntrustedInputError with a readable reason."""
    depth = 0
    try:
        for event, _ in SafeElementTree.iterparse(
            io.BytesIO(data),
            events=("start", "end"),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        ):
            if event == "start":
                depth += 1
                if depth > max_depth:
                    raise UntrustedInputError(f"It is nested deeper than {max_depth} levels.")
            else:
                depth -= 1
    except DefusedXmlException as exc:
        raise UntrustedInputError("It declares a DTD or entities, which are not allowed.") from exc
    except SafeElementTree.ParseError as exc:
        raise UntrustedInputError(f"It is not well-formed XML ({exc}).") from exc
