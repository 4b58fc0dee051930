"""Forms of the workflows pages: the JSON editor of a definition, the import upload,
and the start form built from a start step's declared inputs."""

import json
from typing import Any

from django import forms

from apps.core.exceptions import ApplicationError

MAX_IMPORT_BYTES = 1_000_000
EXAMPLE_DEFINITION = {
    "steps": [
        {"id": "start", "type": "start", "inputs": {"topic": {"type": "string", "required": True}}},
        {"id": "draft", "type": "template", "after": ["start"],
         "template": "About {{ inputs.topic }}"},
        {"id": "end", "type": "end", "after": ["draft"],
         "outputs": {"text": "{{ steps.draft.output.text }}"}},
    ]
}  # fmt: skip


def pretty(definition: Any) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False)


def split_path(field: str) -> tuple[str, str]:
    """A validation error's field as (step, field): `steps.fetch.url` -> ("fetch",
    "url"), `steps[2].id` -> ("#2", "id"), `definition.steps` -> ("", "steps")."""
    head, _, rest = field.partition(".")
    if head == "steps":
        step, _, name = rest.partition(".")
        return step, name
    if head.startswith("steps["):
        return "#" + head[6:-1], rest
    return "", rest or head


class DefinitionForm(forms.Form):
    """A workflow's name, description and its definition as JSON text. Problems the
    services find in the definition are kept in `definition_errors` (step id, field,
    message), shown under the editor."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=5000, widget=forms.TextInput)
    definition = forms.CharField(
        max_length=512_000,
        widget=forms.Textarea(attrs={"rows": 22, "spellcheck": "false", "class": "code"}),
        help_text='JSON: {"steps": [...]}; see the workflows documentation for step types.',
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.definition_errors: list[dict[str, str]] = []

    def clean_definition(self) -> Any:
        text = self.cleaned_data["definition"]
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}.") from exc

    def add_service_error(self, exc: ApplicationError) -> None:
        """The service's error: definition problems listed per step and field, a name
        error on the name, anything else above the form."""
        for detail in exc.details:
            field = str(detail.get("field") or "")
            message = str(detail.get("message") or exc.message)
            if field in ("name", "description"):
                self.add_error(field, message)
            elif field.startswith(("steps", "definition")):
                step, rest = split_path(field)
                self.definition_errors.append(
                    {"path": field, "step": step, "field": rest, "message": message}
                )
        if self.definition_errors:
            self.add_error("definition", f"{len(self.definition_errors)} problem(s), listed below.")
        elif not self.errors:
            self.add_error(None, exc.message)


class ImportForm(forms.Form):
    file = forms.FileField(label="Workflow file (.json, as exported)")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"The file is larger than {MAX_IMPORT_BYTES} bytes.")
        try:
            return json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise forms.ValidationError("The file is not a JSON document.") from exc


class StartRunForm(forms.Form):
    """One field per declared input of the start step: string -> text, number ->
    decimal, integer -> integer, boolean -> yes/no, object/array -> JSON text. The
    services check the values again (`inputs.<name>` errors land on the field)."""

    def __init__(self, *args: Any, declared: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.declared = declared
        for name, spec in declared.items():
            spec = spec if isinstance(spec, dict) else {}
            required = bool(spec.get("required"))
            kind = spec.get("type", "string")
            common: dict[str, Any] = {"label": name, "required": required}
            if "default" in spec:
                common["initial"] = (
                    json.dumps(spec["default"]) if kind in ("object", "array") else spec["default"]
                )
            common["help_text"] = f"{kind}{', required' if required else ''}"
            field: forms.Field
            if kind == "integer":
                field = forms.IntegerField(**common)
            elif kind == "number":
                field = forms.FloatField(**common)
            elif kind == "boolean":
                common["required"] = required
                field = forms.TypedChoiceField(
                    choices=[("", "—"), ("true", "yes"), ("false", "no")],
                    coerce=lambda v: v == "true",
                    empty_value=None,
                    **common,
                )
            elif kind in ("object", "array"):
                field = forms.JSONField(widget=forms.Textarea(attrs={"rows": 4}), **common)
            else:
                field = forms.CharField(
                    widget=forms.Textarea(attrs={"rows": 2}), max_length=100_000, **common
                )
            self.fields[f"in_{name}"] = field

    def inputs(self) -> dict[str, Any]:
        """The filled fields as the run's inputs (empty optional ones left out, so the
        start step's defaults apply)."""
        out: dict[str, Any] = {}
        for name in self.declared:
            value = self.cleaned_data.get(f"in_{name}")
            if value is None or value == "":
                continue
            out[name] = value
        return out

    def add_service_error(self, exc: ApplicationError) -> None:
        placed = False
        for detail in exc.details:
            field = str(detail.get("field") or "")
            key = f"in_{field.removeprefix('inputs.')}"
            if field.startswith("inputs.") and key in self.fields:
                self.add_error(key, str(detail.get("message") or exc.message))
                placed = True
        if not placed:
            self.add_error(None, exc.message)
