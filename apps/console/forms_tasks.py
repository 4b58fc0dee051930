"""Forms of the console's tasks, webhooks and triggers pages: they parse and bound input
(the same bounds as the API's serializers); the tasks services decide the rest."""

import datetime as dt
import zoneinfo
from typing import Any

from django import forms
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.core.outbox import EVENT_TYPES
from apps.tasks.choices import ConversationMode, MissedPolicy, OverlapPolicy, ScheduleKind


def add_service_error(form: forms.Form, exc: ApplicationError, fields: dict[str, str]) -> None:
    """A service's error on the form: on the field it names (`fields` maps the service's
    names to the form's), else above the form."""
    placed = False
    for detail in exc.details:
        name = fields.get(str(detail.get("field") or ""), str(detail.get("field") or ""))
        if name in form.fields:
            form.add_error(name, detail.get("message") or exc.message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class TaskForm(forms.Form):
    """A task: the agent, the prompt, the schedule (once / cron / interval, in a time
    zone) and the policies. Times are read in the task's time zone."""

    name = forms.CharField(max_length=200)
    agent = forms.ChoiceField(label="Agent")
    prompt_template = forms.CharField(
        label="Prompt",
        max_length=20_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="$date, $time, $datetime, $due_at, $timezone, $task_name and "
        "$previous_answer are replaced; write $$ for a dollar sign.",
    )
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    schedule_kind = forms.ChoiceField(label="Schedule", choices=ScheduleKind.choices)
    run_at = forms.DateTimeField(
        label="Run at", required=False, widget=LocalDateTimeInput(), help_text="For “once”."
    )
    cron = forms.CharField(
        label="Cron expression",
        required=False,
        max_length=120,
        help_text="For “cron”: minute hour day month weekday, e.g. 0 9 * * 1-5.",
    )
    interval_seconds = forms.IntegerField(
        label="Every (seconds)",
        required=False,
        min_value=60,
        max_value=366 * 86400,
        help_text="For “interval”: at least 60.",
    )
    timezone = forms.CharField(label="Time zone", max_length=64, initial="UTC")
    conversation_mode = forms.ChoiceField(
        label="Conversation", choices=ConversationMode.choices, initial=ConversationMode.NEW
    )
    overlap_policy = forms.ChoiceField(
        label="While the previous execution runs",
        choices=OverlapPolicy.choices,
        initial=OverlapPolicy.SKIP,
    )
    missed_policy = forms.ChoiceField(
        label="Missed due times", choices=MissedPolicy.choices, initial=MissedPolicy.RUN_ONCE
    )
    time_limit_seconds = forms.IntegerField(
        label="Time limit (seconds)", min_value=10, max_value=86400, initial=15 * 60
    )
    max_retries = forms.IntegerField(label="Retries", min_value=0, max_value=10, initial=2)

    # The service's field names for the form's.
    SERVICE_FIELDS = {"agent_id": "agent"}

    def __init__(self, *args: Any, agents: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["agent"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose an agent"), *agents]

    def clean_timezone(self) -> str:
        name: str = self.cleaned_data["timezone"].strip()
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError("Unknown time zone (e.g. Europe/Paris, UTC).") from exc
        return name

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        run_at = data.get("run_at")
        tz = data.get("timezone")
        if isinstance(run_at, dt.datetime) and tz:
            # datetime-local has no zone: the time is the task's local time.
            naive = timezone.make_naive(run_at) if timezone.is_aware(run_at) else run_at
            data["run_at"] = naive.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return data

    def values(self) -> dict[str, Any]:
        """The service's `values` (the agent goes as `agent_id`)."""
        data = dict(self.cleaned_data)
        data.pop("agent")
        if data["schedule_kind"] != ScheduleKind.ONCE:
            data["run_at"] = None
        if data["schedule_kind"] != ScheduleKind.CRON:
            data["cron"] = ""
        if data["schedule_kind"] != ScheduleKind.INTERVAL:
            data["interval_seconds"] = None
        return data

    @classmethod
    def initial_for(cls, task: Any) -> dict[str, Any]:
        initial = {name: getattr(task, name) for name in cls.base_fields if name != "agent"}
        initial["agent"] = str(task.agent_id)
        if task.run_at:
            initial["run_at"] = task.run_at.astimezone(zoneinfo.ZoneInfo(task.timezone))
        return initial


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        help_text="Where signed events are POSTed; checked by the outbound guard.",
    )
    description = forms.CharField(required=False, max_length=500)
    event_types = forms.MultipleChoiceField(
        label="Events",
        widget=forms.CheckboxSelectMultiple,
        choices=[("*", "Every event")] + [(t, t) for t in EVENT_TYPES],
        error_messages={"required": "Subscribe to at least one event type."},
    )


class TriggerForm(forms.Form):
    name = forms.CharField(max_length=200)
    target = forms.ChoiceField(
        label="Starts",
        help_text="A run of an agent (with the prompt below) or an execution of a task.",
    )
    prompt_template = forms.CharField(
        label="Prompt",
        required=False,
        max_length=20_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For an agent: ${body.field} is replaced by the JSON body's field.",
    )

    SERVICE_FIELDS = {"agent_id": "target", "task_id": "target"}

    def __init__(
        self,
        *args: Any,
        agents: list[tuple[str, str]],
        tasks: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["target"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            ("", "Choose an agent or a task"),
            ("Agents", [(f"agent:{pk}", name) for pk, name in agents]),
            ("Tasks", [(f"task:{pk}", name) for pk, name in tasks]),
        ]

    def target_ids(self) -> dict[str, str]:
        kind, _, pk = self.cleaned_data["target"].partition(":")
        return {"agent_id": pk} if kind == "agent" else {"task_id": pk}
