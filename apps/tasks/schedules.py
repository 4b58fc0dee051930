"""Pure schedule arithmetic and prompt templates (no database).

Cron expressions are parsed by croniter, evaluated in the task's named time zone, so
"0 9 * * *" in Europe/Paris is 09:00 local on both sides of a DST change. Intervals are
absolute (every N seconds from the start, DST does not shift them).
"""

import json
import re
import string
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

from apps.core.exceptions import ValidationFailed
from apps.tasks.choices import ScheduleKind

MIN_INTERVAL_SECONDS = 60
MAX_TEMPLATE_CHARS = 20_000
MAX_PROMPT_CHARS = 100_000


def zone(name: str) -> ZoneInfo:
    """The named time zone. Raises ValidationFailed(field=timezone)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"Unknown time zone {name!r}.", field="timezone") from exc


def validate_cron(expression: str) -> str:
    """A five-field cron expression. Raises ValidationFailed(field=cron)."""
    expression = " ".join(expression.split())
    if len(expression.split(" ")) != 5:
        raise ValidationFailed(
            "A cron expression has five fields: minute hour day month weekday.", field="cron"
        )
    try:
        croniter(expression)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValidationFailed(f"Invalid cron expression: {exc}", field="cron") from exc
    return expression


def next_due(
    *,
    kind: str,
    after: datetime,
    tz: str = "UTC",
    run_at: datetime | None = None,
    cron: str = "",
    interval_seconds: int | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    anchor: datetime | None = None,
) -> datetime | None:
    """The first due time strictly after `after` (aware, UTC), or None when the schedule
    has no more. `anchor` starts intervals when there is no `start_at`."""
    result: datetime | None
    if kind == ScheduleKind.ONCE:
        result = run_at if run_at is not None and run_at > after else None
    elif kind == ScheduleKind.CRON:
        base = after
        if start_at is not None and start_at > after:
            base = start_at - timedelta(microseconds=1)
        local = base.astimezone(zone(tz))
        nxt = croniter(cron, local).get_next(datetime)
        result = nxt.astimezone(ZoneInfo("UTC"))
    elif kind == ScheduleKind.INTERVAL:
        assert interval_seconds
        origin = start_at or anchor or after
        if after < origin:
            result = origin
        else:
            steps = int((after - origin).total_seconds() // interval_seconds) + 1
            result = origin + timedelta(seconds=steps * interval_seconds)
    else:  # pragma: no cover - validated on save
        raise ValueError(kind)
    if result is not None and start_at is not None and result < start_at:
        result = None if kind == ScheduleKind.ONCE else result
    if result is not None and end_at is not None and result > end_at:
        return None
    return result


class PromptTemplate(string.Template):
    """`$name` / `${name}` placeholders, dotted paths allowed (`${body.user.name}`).
    Substitution only: no expressions, no attribute access, no code."""

    idpattern = r"(?a:[_a-z][_a-z0-9]*(?:\.[_a-z0-9]+)*)"
    flags = re.IGNORECASE


def _lookup(variables: dict[str, Any], path: str) -> Any:
    value: Any = variables
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class _Resolver(dict[str, str]):
    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__()
        self.variables = variables

    def __missing__(self, key: str) -> str:
        value = _lookup(self.variables, key)
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)


def validate_template(template: str, *, field: str = "prompt_template") -> str:
    """A template that parses. Raises ValidationFailed naming `field`."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ValidationFailed(f"At most {MAX_TEMPLATE_CHARS} characters.", field=field)
    if not PromptTemplate(template).is_valid():
        raise ValidationFailed(
            "Invalid placeholder: use $name or ${name} (write $$ for a dollar sign).",
            field=field,
        )
    return template


def render_prompt(template: str, variables: dict[str, Any]) -> str:
    """The template with its placeholders replaced (unknown ones become empty)."""
    rendered = PromptTemplate(template).substitute(_Resolver(variables))
    return rendered[:MAX_PROMPT_CHARS]
