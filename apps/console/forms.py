"""Forms of the console: they parse and bound input; the services decide the rest."""

import json
import uuid
from typing import Any

from django import forms

from apps.agents.documents import agent_document_check
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


class AgentImportForm(forms.Form):
    file = forms.FileField(label="Export file (JSON)")

    def clean_file(self) -> dict[str, Any]:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(f"At most {MAX_IMPORT_BYTES // 1000} kB.")
        try:
            document = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(f"Not a JSON file ({exc}).") from exc
        cleaned, errors = agent_document_check(document)
        if errors:
            raise forms.ValidationError(errors)
        return cleaned


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
