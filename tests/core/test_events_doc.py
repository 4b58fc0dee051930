"""docs/events.md cannot drift from apps/core/events.py; events serialize as documented."""

import dataclasses
import re
from pathlib import Path

from apps.core import events
from apps.core.events import (
    EVENT_CLASSES,
    AnswerDelta,
    Done,
    Envelope,
    EventType,
    Step,
    ToolCallRef,
    Usage,
    docs_table,
    event_from,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
BEGIN, END = "<!-- events:begin -->\n", "<!-- events:end -->"


def _documented() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)]


def test_docs_table_is_the_one_rendered_from_the_module():
    assert _documented() == docs_table(), (
        "docs/events.md differs from apps/core/events.py: paste `python -m apps.core.events`"
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
