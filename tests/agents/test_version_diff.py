"""agent_version_diff: the fields that differ between two versions, references by
name, text as a line diff."""

import pytest

from apps.agents.exceptions import AgentVersionNotFound
from apps.agents.selectors import DiffLine, agent_version_diff
from apps.agents.services import agent_update
from tests.agents.factories import actor_for, make_agent, make_knowledge_base, make_tool
from tests.helpers import assert_error

pytestmark = pytest.mark.django_db


def test_diff_lists_changed_fields_with_names_and_a_line_diff(user, workspace):
    agent = make_agent(workspace=workspace, user=user, system_prompt="One\nTwo\nThree")
    kb = make_knowledge_base(workspace=workspace, name="Manuals")
    tool = make_tool(workspace=workspace, name="lookup")
    agent_update(
        actor=actor_for(user=user, workspace=workspace),
        agent=agent,
        values={
            "system_prompt": "One\n2\nThree\nFour",
            "knowledge_base_ids": [str(kb.id)],
            "tool_ids": [str(tool.id)],
        },
    )
    changes = {c.field: c for c in agent_version_diff(agent=agent, before=1, after=2)}
    assert set(changes) == {"system_prompt", "knowledge_base_ids", "tool_ids"}
    assert changes["system_prompt"].lines == (
        DiffLine("equal", "One"),
        DiffLine("delete", "Two"),
        DiffLine("insert", "2"),
        DiffLine("equal", "Three"),
        DiffLine("insert", "Four"),
    )
    assert (changes["knowledge_base_ids"].before, changes["knowledge_base_ids"].after) == (
        [],
        ["Manuals"],
    )
    assert changes["tool_ids"].after == ["lookup"]
    # Backwards is the mirror image.
    back = {c.field: c for c in agent_version_diff(agent=agent, before=2, after=1)}
    assert back["knowledge_base_ids"].before == ["Manuals"]
    assert agent_version_diff(agent=agent, before=2, after=2) == []


def test_a_deleted_reference_stays_an_id_and_a_missing_version_raises(user, workspace):
    agent = make_agent(workspace=workspace, user=user)
    kb = make_knowledge_base(workspace=workspace, name="Gone")
    agent_update(
        actor=actor_for(user=user, workspace=workspace),
        agent=agent,
        values={"knowledge_base_ids": [str(kb.id)]},
    )
    kb_id = str(kb.id)
    agent.knowledge_bases.clear()
    kb.delete()
    (change,) = agent_version_diff(agent=agent, before=1, after=2)
    assert change.after == [kb_id]
    with pytest.raises(AgentVersionNotFound):
        agent_version_diff(agent=agent, before=1, after=3)


def test_the_api_returns_the_diff(api, user, workspace):
    agent = make_agent(workspace=workspace, user=user, system_prompt="One\nTwo")
    kb = make_knowledge_base(workspace=workspace, name="Manuals")
    agent_update(
        actor=actor_for(user=user, workspace=workspace),
        agent=agent,
        values={"system_prompt": "One\nThree", "knowledge_base_ids": [str(kb.id)]},
    )
    url = f"/api/v1/agents/{agent.id}/versions/diff"
    response = api.get(url, {"before": 1, "after": 2})
    assert response.status_code == 200, response.content
    assert response.json()["data"] == [
        {
            "field": "system_prompt",
            "before": "One\nTwo",
            "after": "One\nThree",
            "lines": [
                {"op": "equal", "text": "One"},
                {"op": "delete", "text": "Two"},
                {"op": "insert", "text": "Three"},
            ],
        },
        {"field": "knowledge_base_ids", "before": [], "after": ["Manuals"], "lines": []},
    ]


def test_the_api_names_bad_parameters_and_missing_versions(api, user, workspace, outsider, anon):
    agent = make_agent(workspace=workspace, user=user)
    url = f"/api/v1/agents/{agent.id}/versions/diff"
    body = assert_error(api.get(url, {"before": "x"}), 400, "validation_error")
    assert {d["field"] for d in body["error"]["details"]} == {"before", "after"}
    assert_error(api.get(url, {"before": 1, "after": 5}), 404, "agent_version_not_found")
    assert_error(outsider.get(url, {"before": 1, "after": 1}), 404, "agent_not_found")
    assert anon.get(url, {"before": 1, "after": 1}).status_code == 401
