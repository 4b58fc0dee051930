from typing import Any

from django import template

from apps.console.dashboard import operator_dashboard

register = template.Library()


@register.simple_tag
def dashboard() -> dict[str, Any]:
    """The operator dashboard's figures (templates/admin/index.html)."""
    return operator_dashboard()
