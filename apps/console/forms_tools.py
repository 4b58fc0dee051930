"""Forms of the console's tools, skills and MCP pages: they parse and bound input; the
skills services decide the rest (the same checks as the API)."""

import json
from typing import Any

from django import forms
from django.conf import settings

from apps.skills.choices import McpAuth, McpTransport


class ToolRunForm(forms.Form):
    """A tool's arguments as a JSON object; the service validates them against the
    tool's schema and names the argument that breaks it."""

    arguments = forms.CharField(
        label="Arguments (JSON)",
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text="A JSON object matching the schema beside.",
    )

    def clean_arguments(self) -> dict[str, Any]:
        raw = self.cleaned_data["arguments"].strip() or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The arguments must be a JSON object, e.g. {}.")
        return value


class SkillUploadForm(forms.Form):
    bundle = forms.FileField(
        label="Skill bundle (ZIP)",
        help_text="A ZIP with a SKILL.md (front matter: name, description) and its files. "
        "Uploading a skill of the same name adds a version.",
    )

    def clean_bundle(self) -> bytes:
        upload = self.cleaned_data["bundle"]
        if upload.size > settings.API_MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is too large.")
        return bytes(upload.read())


class McpServerForm(forms.Form):
    name = forms.CharField(max_length=64)
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        help_text="The server's MCP endpoint; checked by the outbound guard.",
    )
    transport = forms.ChoiceField(
        choices=[(c.value, c.label) for c in McpTransport if c != McpTransport.STDIO],
        initial=McpTransport.STREAMABLE_HTTP,
    )
    auth_type = forms.ChoiceField(label="Authentication", choices=McpAuth.choices)
    bearer_token = forms.CharField(
        label="Bearer token",
        required=False,
        max_length=4000,
        widget=forms.PasswordInput(render_value=False),
        help_text="For bearer authentication; stored encrypted, never shown again.",
    )
