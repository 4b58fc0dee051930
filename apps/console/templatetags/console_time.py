import datetime as dt

from django import template

register = template.Library()


@register.simple_tag
def duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """How long from `start` to `end`, readable ("4.2 s", "3 min 5 s"); "—" without both."""
    if start is None or end is None:
        return "—"
    seconds = max((end - start).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    return f"{minutes // 60} h {minutes % 60} min"
