"""MCP tool annotations were stored with the SDK's Python names (`destructive_hint`), so
the approval rule (`destructiveHint` and not `readOnlyHint`) never saw them. Rename the
keys to MCP's names and turn on approval for destructive tools. Approval already on
stays on; nothing is turned off."""

from typing import Any

from django.db import migrations

_ALIASES = {
    "destructive_hint": "destructiveHint",
    "read_only_hint": "readOnlyHint",
    "idempotent_hint": "idempotentHint",
    "open_world_hint": "openWorldHint",
}


def annotations_by_alias(apps: Any, schema_editor: Any) -> None:
    Tool = apps.get_model("skills", "Tool")
    for tool in Tool.objects.filter(source="mcp").exclude(annotations={}).iterator():
        renamed = {_ALIASES.get(key, key): value for key, value in tool.annotations.items()}
        destructive = bool(renamed.get("destructiveHint")) and not renamed.get("readOnlyHint")
        if renamed == tool.annotations and (tool.requires_approval or not destructive):
            continue
        tool.annotations = renamed
        tool.requires_approval = tool.requires_approval or destructive
        tool.save(update_fields=["annotations", "requires_approval"])


class Migration(migrations.Migration):
    dependencies = [
        ("skills", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(annotations_by_alias, migrations.RunPython.noop),
    ]
