"""docs/events.md and docs/webhooks.md cannot drift from apps/core/events.py; events
serialize as documented."""

import dataclasses
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.core import events
from apps.core.events import (
    EVENT_CLASSES,
    OUTBOUND_EVENT_CLASSES,
    AgentJobCompletedNotice,
    AnswerDelta,
    Done,
    Envelope,
    EventType,
    RunError,
    Step,
    TaskExecutionCompletedNotice,
    ToolCallRef,
    Usage,
    docs_table,
    event_from,
    outbound_event_from,
    webhooks_docs_table,
    workflow_docs_table,
)
from apps.core.outbox import Outgoing, outbox_emit

DOCS = Path(__file__).resolve().parents[2] / "docs"
# (file, marker, renderer, the command that prints it)
RENDERED = {
    "events": ("events.md", docs_table, "python -m apps.core.events"),
    "webhooks": ("webhooks.md", webhooks_docs_table, "python -m apps.core.events webhooks"),
    "workflows": ("workflows.md", workflow_docs_table, "python -m apps.core.events workflows"),
}


def _text(name: str = "events") -> str:
    return (DOCS / RENDERED[name][0]).read_text()


def _documented(name: str = "events") -> str:
    text = _text(name)
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    return text[text.index(begin) + len(begin) : text.index(end)]


@pytest.mark.parametrize("name", RENDERED)
def test_docs_table_is_the_one_rendered_from_the_module(name):
    filename, render, command = RENDERED[name]
    assert _documented(name) == render(), (
        f"docs/{filename} differs from apps/core/events.py: paste `{command}`"
    )


def test_every_event_type_has_one_class_and_one_row():
    assert set(EVENT_CLASSES) == {str(t) for t in EventType}
    rows = re.findall(r"^\| `([a-z._]+)` \|", _documented(), flags=re.M)
    assert rows == [*EVENT_CLASSES, "heartbeat", "error"]


def test_a_field_added_without_docs_is_caught(monkeypatch):
    """The check above fails on drift: an extra field changes the rendered table."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class AnswerDeltaPlus(events.Event):
        type = EventType.ANSWER_DELTA
        message_id: str
        delta: str
        extra: int

    monkeypatch.setitem(EVENT_CLASSES, "answer.delta", AnswerDeltaPlus)
    assert "`{message_id, delta, extra}`" in docs_table()
    assert _documented() != docs_table()


def test_a_webhook_field_or_version_changed_without_docs_is_caught(monkeypatch):
    @dataclasses.dataclass(frozen=True, slots=True)
    class JobV2(events.OutboundEvent):
        type = "agent_job.completed"
        version = 2
        job_id: uuid.UUID
        kind: str

    monkeypatch.setitem(OUTBOUND_EVENT_CLASSES, "agent_job.completed", JobV2)
    assert "| `agent_job.completed` | 2 | `{job_id, kind}` |" in webhooks_docs_table()
    assert _documented("webhooks") != webhooks_docs_table()


def _webhook_examples() -> list[dict]:
    text = _text("webhooks")
    section = text[text.index("### Examples") :]
    section = section[: section.index("\n## ")]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_every_webhook_example_is_what_its_class_sends():
    examples = _webhook_examples()
    assert len(examples) >= 5
    for example in examples:
        cls = OUTBOUND_EVENT_CLASSES[example["type"]]
        assert set(example) == {"id", "type", "version", "timestamp", "workspace_id", "data"}
        assert example["version"] == cls.version
        event = outbound_event_from(example["type"], example["data"])
        assert type(event) is cls
        # Every documented key is a field and comes back unchanged (no field missing).
        assert event.to_dict() == example["data"], example["type"]


def test_webhook_payload_is_the_typed_event_serialized():
    workspace_id = uuid.uuid4()
    job = AgentJobCompletedNotice(job_id=uuid.uuid4(), kind="generate_agent", status="succeeded")
    body = Outgoing(event=job, workspace_id=workspace_id).payload()
    assert body["type"] == "agent_job.completed" and body["version"] == 1
    assert body["workspace_id"] == str(workspace_id)
    assert body["data"] == {
        "job_id": str(job.job_id),
        "kind": "generate_agent",
        "status": "succeeded",
    }
    failed = AgentJobCompletedNotice(
        job_id=job.job_id, kind="optimize_prompt", status="failed", error=RunError("x", "y")
    )
    assert failed.to_dict()["error"] == {"code": "x", "message": "y"}
    assert outbound_event_from("agent_job.completed", failed.to_dict()) == failed
    done = TaskExecutionCompletedNotice(
        task_id=uuid.uuid4(),
        task_name="Digest",
        execution_id=uuid.uuid4(),
        due_at=datetime(2026, 12, 7, 7, 30, tzinfo=UTC),
        trigger="schedule",
        status="succeeded",
        attempts=1,
        run_id=None,
        conversation_id=None,
        answer="ok",
    )
    data = done.to_dict()
    assert data["due_at"] == "2026-12-07T07:30:00+00:00"
    assert data["run_id"] is None and data["conversation_id"] is None  # sent as null
    assert outbound_event_from("task.execution.completed", data) == done
    json.dumps(body)  # plain JSON


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "run.completed", "data": {}},  # a hand-built payload
        Done(status="completed", message_id=None, usage=Usage(input_tokens=0, output_tokens=0)),
        "run.completed",
    ],
)
def test_outbox_refuses_anything_but_an_outbound_event_class(bad):
    with pytest.raises(TypeError, match="OUTBOUND_EVENT_CLASSES"):
        outbox_emit(bad, workspace_id=uuid.uuid4())


def test_outbox_refuses_an_unregistered_subclass():
    @dataclasses.dataclass(frozen=True, slots=True)
    class Homemade(events.OutboundEvent):
        type = "run.completed"
        anything: str

    with pytest.raises(TypeError, match="not Homemade"):
        outbox_emit(Homemade(anything="x"), workspace_id=uuid.uuid4())


def test_documented_fields_are_what_to_dict_sends():
    assert AnswerDelta(message_id="m", delta="é").to_dict() == {"message_id": "m", "delta": "é"}
    step = Step(step=1, kind="tool_decision", tool_calls=[ToolCallRef(tool_call_id="c", name="n")])
    assert step.to_dict() == {
        "step": 1,
        "kind": "tool_decision",
        "tool_calls": [{"tool_call_id": "c", "name": "n"}],
    }
    assert Step(step=2, kind="thinking", thinking_delta="hm").to_dict() == {
        "step": 2,
        "kind": "thinking",
        "thinking_delta": "hm",
    }


def test_envelope_round_trips_and_sends_utf8():
    done = Done(status="completed", message_id=None, usage=Usage(input_tokens=3, output_tokens=4))
    envelope = Envelope(done, None, None, cursor=7)
    again = Envelope.from_dict(envelope.to_dict())
    assert again.event == done and again.cursor == 7
    step = Step(step=1, kind="thinking", thinking_delta="x")
    assert event_from("step", step.to_dict()) == step
    delta = Envelope(AnswerDelta(message_id="m", delta="naïve ☕"), None, None, cursor=1)
    assert "naïve ☕" in delta.to_json()
    assert delta.to_sse().startswith(b"id: 1\nevent: answer.delta\ndata: {")
    assert "naïve ☕".encode() in delta.to_sse()
