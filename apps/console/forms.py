"""Forms of the console: they parse and bound input; the services decide the rest."""

import json
import re
import uuid
from typing import Any

from django import forms

from apps.providers.choices import ProviderKind

MAX_MESSAGE_CHARS = 100_000


class ChoicesForm(forms.Form):
    def _set_choices(self, name: str, choices: list[tuple[str, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices


class ConversationFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    agent = forms.UUIDField(required=False, label="Agent")


class NewChatForm(forms.Form):
    agent = forms.UUIDField(label="Agent")
    content = forms.CharField(required=False, max_length=MAX_MESSAGE_CHARS, label="Message")


class SendForm(forms.Form):
    content = forms.CharField(max_length=MAX_MESSAGE_CHARS, label="Message", strip=True)
    interrupt = forms.BooleanField(required=False)


class RenameForm(forms.Form):
    title = forms.CharField(max_length=200, label="Title")


class FeedbackForm(forms.Form):
    rating = forms.ChoiceField(choices=[("up", "Helpful"), ("down", "Not helpful")])


class DecisionForm(forms.Form):
    tool_call_id = forms.CharField(max_length=128)
    approved = forms.TypedChoiceField(choices=[("1", "Approve"), ("0", "Reject")], coerce=int)


class AgentForm(ChoicesForm):
    name = forms.CharField(max_length=100)
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    model = forms.ChoiceField(label="Model", required=False)
    system_prompt = forms.CharField(
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 6}),
        label="Instructions",
    )
    opening_message = forms.CharField(required=False, max_length=2000, label="Opening message")
    starter_questions = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line.",
    )
    knowledge_bases = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Knowledge bases"
    )
    builtin_tools = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Built-in tools"
    )
    tools = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Workspace tools"
    )
    tools_requiring_approval = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Ask me before running"
    )
    suggestions_enabled = forms.BooleanField(required=False, label="Suggest follow-up questions")

    def __init__(
        self,
        *args: Any,
        models: list[tuple[str, str]],
        knowledge_bases: list[tuple[str, str]],
        tools: list[tuple[str, str]],
        builtin_tools: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._set_choices("model", [("", "Workspace default"), *models])
        self._set_choices("knowledge_bases", knowledge_bases)
        if tools:
            self._set_choices("tools", tools)
        else:
            del self.fields["tools"]  # nothing to choose: no empty heading
        self._set_choices("builtin_tools", builtin_tools)
        # Approval is asked by tool name, of built-in and workspace tools alike.
        names = [name for name, _ in builtin_tools] + [label for _, label in tools]
        self._set_choices("tools_requiring_approval", [(n, n) for n in dict.fromkeys(names)])

    def values(self) -> dict[str, Any]:
        """The agent service's configuration values."""
        data = self.cleaned_data
        questions = [q.strip() for q in data["starter_questions"].splitlines() if q.strip()]
        return {
            "name": data["name"],
            "description": data["description"],
            "model_id": data["model"] or None,
            "system_prompt": data["system_prompt"],
            "opening_message": data["opening_message"],
            "starter_questions": questions,
            "knowledge_base_ids": list(data["knowledge_bases"]),
            "builtin_tools": list(data["builtin_tools"]),
            "tool_ids": list(data.get("tools", [])),
            "tools_requiring_approval": list(data["tools_requiring_approval"]),
            "suggestions_enabled": data["suggestions_enabled"],
        }


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, max_length=2000)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name")


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ProviderKind.choices)
    base_url = forms.URLField(
        required=False, max_length=500, label="Base URL", assume_scheme="https"
    )
    api_key = forms.CharField(
        required=False, max_length=1000, widget=forms.PasswordInput, label="API key"
    )
    model = forms.CharField(
        max_length=200,
        label="Chat model",
        help_text="The model name the provider knows, e.g. gpt-4o-mini.",
    )
    embedding_model = forms.CharField(
        required=False,
        max_length=200,
        label="Embedding model",
        help_text="Optional: for knowledge bases, e.g. text-embedding-3-small.",
    )


class MemberForm(ChoicesForm):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=[])

    def __init__(self, *args: Any, roles: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._set_choices("role", roles)


# --- workspace security and audit (settings) ---------------------------------------------


class SecurityPolicyForm(forms.Form):
    require_admin_mfa = forms.BooleanField(
        required=False,
        label="Require MFA of admins and owners",
        help_text="Admins and owners without MFA cannot act in this workspace until they "
        "set it up. You need MFA on your own account to turn this on.",
    )


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        required=False,
        max_length=64,
        help_text="Actions starting with this, e.g. api_key or agent.",
    )
    user = forms.CharField(required=False, max_length=254, label="Who", help_text="Email contains")


# --- knowledge: URL import, chunk edit, search test ----------------------------------------


class UrlImportForm(forms.Form):
    url = forms.URLField(max_length=2000, label="URL", assume_scheme="https")
    name = forms.CharField(
        max_length=255, required=False, help_text="Optional; else the URL's last part."
    )


class ChunkEditForm(forms.Form):
    content = forms.CharField(max_length=100_000, widget=forms.Textarea(attrs={"rows": 5}))
    enabled = forms.BooleanField(required=False, help_text="Disabled passages are not searched.")


RERANK_CHOICES = [
    ("", "As the knowledge base says"),
    ("on", "Rerank"),
    ("off", "Do not rerank"),
]


class SearchTestForm(ChoicesForm):
    q = forms.CharField(max_length=1000, label="Query", strip=True)
    mode = forms.ChoiceField(required=False, label="Mode")
    top_k = forms.IntegerField(min_value=1, max_value=100, required=False, label="Results")
    rerank = forms.ChoiceField(choices=RERANK_CHOICES, required=False, label="Rerank")

    def __init__(self, *args: Any, modes: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._set_choices("mode", [("", "As the knowledge base says"), *modes])

    def rerank_value(self) -> bool | None:
        """None: the knowledge base's setting; True/False: forced."""
        return {"on": True, "off": False}.get(self.cleaned_data.get("rerank") or "")


# --- agents: import, sharing, draft generation, prompt optimization, version diff ---------

MAX_IMPORT_BYTES = 1_000_000
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_IMPORT_TEXT = {
    "name": 100,
    "description": 2000,
    "avatar": 2000,
    "system_prompt": 100_000,
    "opening_message": 4000,
}
_IMPORT_NUMBERS: dict[str, tuple[float, float, bool, bool]] = {
    # field: (min, max, integer only, null allowed)
    "temperature": (0.0, 2.0, False, True),
    "max_tokens": (1, 1_000_000, True, True),
    "max_loops": (1, 100, True, False),
    "wall_clock_seconds": (10, 3600, True, False),
}
_IMPORT_REFERENCES = {
    "tools": "name",
    "skill_versions": "name",
    "knowledge_bases": "name",
    "subagents": "slug",
}


def _import_reference(value: Any, where: str, name_key: str, errors: list[str]) -> None:
    if not isinstance(value, dict) or not (value.get("id") or value.get(name_key)):
        errors.append(f"{where}: give an object with an id or a {name_key}.")
        return
    if value.get("id") is not None:
        try:
            uuid.UUID(str(value["id"]))
        except ValueError:
            errors.append(f"{where}.id: not a valid UUID.")
    if value.get(name_key) is not None and not isinstance(value[name_key], str):
        errors.append(f"{where}.{name_key}: not a string.")


def agent_document_errors(
    document: Any, *, builtin_tools: set[str], memory_modes: set[str]
) -> list[str]:
    """What is wrong with the shape of an agent export document (the API's import checks
    the same), one message per field, named like `agent.temperature`."""
    if not isinstance(document, dict):
        return ["The file is not a JSON object."]
    errors = []
    if document.get("format") != "agent-platform.agent":
        errors.append('format: must be "agent-platform.agent".')
    if document.get("format_version") != 1:
        errors.append("format_version: must be 1.")
    agent = document.get("agent")
    if not isinstance(agent, dict):
        return [*errors, "agent: must be an object."]
    for key, limit in _IMPORT_TEXT.items():
        value = agent.get(key)
        if key == "name" and not (isinstance(value, str) and value.strip()):
            errors.append("agent.name: required.")
        elif value is not None and not isinstance(value, str):
            errors.append(f"agent.{key}: not a string.")
        elif isinstance(value, str) and len(value) > limit:
            errors.append(f"agent.{key}: at most {limit} characters.")
    for key, (low, high, integer, nullable) in _IMPORT_NUMBERS.items():
        if key not in agent or (agent[key] is None and nullable):
            continue
        value = agent[key]
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "a whole number" if integer else "a number"
            errors.append(f"agent.{key}: {kind} from {low:g} to {high:g}.")
    for key in ("reasoning", "suggestions_enabled"):
        if key in agent and not isinstance(agent[key], bool):
            errors.append(f"agent.{key}: true or false.")
    if "memory_mode" in agent and agent["memory_mode"] not in memory_modes:
        errors.append(f"agent.memory_mode: one of {', '.join(sorted(memory_modes))}.")
    lists: dict[str, tuple[int, Any]] = {
        "builtin_tools": (20, lambda v: v in builtin_tools),
        "starter_questions": (10, lambda v: isinstance(v, str) and len(v) <= 300),
        "tools_requiring_approval": (
            200,
            lambda v: isinstance(v, str) and bool(_TOOL_NAME.match(v)),
        ),
    }
    for key, (most, ok) in lists.items():
        value = agent.get(key, [])
        if not isinstance(value, list) or len(value) > most:
            errors.append(f"agent.{key}: a list of at most {most}.")
            continue
        errors += [f"agent.{key}[{i}]: not accepted." for i, v in enumerate(value) if not ok(v)]
    model = agent.get("model")
    if model is not None:
        _import_reference(model, "agent.model", "name", errors)
    for key, name_key in _IMPORT_REFERENCES.items():
        value = agent.get(key, [])
        if not isinstance(value, list) or len(value) > 200:
            errors.append(f"agent.{key}: a list of at most 200.")
            continue
        for i, ref in enumerate(value):
            _import_reference(ref, f"agent.{key}[{i}]", name_key, errors)
    return errors


class AgentImportForm(forms.Form):
    file = forms.FileField(label="Export file (JSON)")

    def __init__(
        self, *args: Any, builtin_tools: set[str], memory_modes: set[str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._builtin_tools = builtin_tools
        self._memory_modes = memory_modes

    def clean_file(self) -> dict[str, Any]:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"At most {MAX_IMPORT_BYTES // 1000} kB.")
        try:
            document = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(f"Not a JSON file ({exc}).") from exc
        errors = agent_document_errors(
            document, builtin_tools=self._builtin_tools, memory_modes=self._memory_modes
        )
        if errors:
            raise forms.ValidationError(errors)
        assert isinstance(document, dict)
        return document


class AgentDraftForm(forms.Form):
    description = forms.CharField(
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Describe the agent",
        help_text="What it is for, who uses it, its tone; a model writes a draft you can edit.",
    )


class PromptOptimizeForm(forms.Form):
    system_prompt = forms.CharField(max_length=100_000, strip=False)
    goal = forms.CharField(max_length=2000, required=False, label="What should improve")


class VersionDiffForm(forms.Form):
    before = forms.IntegerField(min_value=1, label="From version")
    after = forms.IntegerField(min_value=1, label="To version")


class SharingForm(ChoicesForm):
    visibility = forms.ChoiceField(label="Who sees it")

    def __init__(
        self,
        *args: Any,
        visibilities: list[tuple[str, str]],
        members: list[tuple[str, str]],
        permissions: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._set_choices("visibility", visibilities)
        self.member_fields = []
        for user_id, label in members:
            name = f"grant_{user_id}"
            self.fields[name] = forms.ChoiceField(
                choices=[("", "No grant"), *permissions], required=False, label=label
            )
            self.member_fields.append(name)

    def grants(self) -> list[tuple[uuid.UUID, str]]:
        """(user id, permission) of every member given a grant."""
        return [
            (uuid.UUID(name.removeprefix("grant_")), self.cleaned_data[name])
            for name in self.member_fields
            if self.cleaned_data.get(name)
        ]
