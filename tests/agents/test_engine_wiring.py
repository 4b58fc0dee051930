"""The engine's tools that come from other apps: sub-agents (apps.agents), knowledge
search with citations (apps.knowledge), skills (apps.skills). Real models and rows, the
scripted model server over real HTTP."""

import uuid

import pytest

from apps.agents.selectors import agent_snapshot
from apps.providers.models import UsageRecord
from apps.providers.scripted import Reply, ToolCall
from tests.agents.factories import make_agent as create_agent
from tests.agents.factories import make_skill_version
from tests.agents.test_engine import chat_requests, make_agent, run, tool_names, user_message
from tests.knowledge.factories import add_texts, make_kb


@pytest.fixture
def model(workspace, scripted_llm):
    from tests.providers.factories import make_scripted_provider

    return make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)[1]


def test_a_sub_agent_answers_through_its_tool(workspace, model, scripted_llm):
    child = create_agent(
        workspace=workspace,
        name="Researcher",
        slug="researcher",
        description="Finds facts.",
        system_prompt="You research.",
        builtin_tools=["calculator", "current_time"],
        tools_requiring_approval=["current_time"],
    )
    parent = create_agent(
        workspace=workspace, name="Boss", slug="boss", subagent_ids=[child.id], builtin_tools=[]
    )
    snapshot = agent_snapshot(agent=parent)
    scripted_llm.push(
        Reply(
            tool_calls=[ToolCall("ask_researcher", {"task": "What is 6*7?"}, id="sub")],
            usage=(10, 5),
        ),
        Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"}, id="c")], usage=(20, 6)),
        Reply(text="42 it is.", usage=(30, 7)),
        Reply(text="The researcher says 42.", usage=(40, 8)),
    )
    outcome, hooks = run(snapshot, [user_message("Ask the researcher for 6*7.")])

    assert outcome.status == "completed"
    assert outcome.answer_text == "The researcher says 42."
    assert (outcome.input_tokens, outcome.output_tokens) == (100, 26)
    # only the parent's messages are the conversation's
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in hooks.messages] == [
        ("assistant", None, ""),
        ("tool", "sub", "42 it is."),
        ("assistant", None, "The researcher says 42."),
    ]
    assert [d["source"] for d in hooks.of("tool.call")] == ["agent"]
    # the sub-agent's steps reach the parent's stream, wrapped, without its token deltas
    relayed = hooks.of("subagent")
    assert {(d["tool_call_id"], d["agent_id"], d["depth"]) for d in relayed} == {
        ("sub", str(child.id), 1)
    }
    kinds = [d["event"]["type"] for d in relayed]
    assert "answer.delta" not in kinds
    assert [k for k in kinds if k in ("tool.call", "tool.result", "answer.done")] == [
        "tool.call",
        "tool.result",
        "answer.done",
    ]
    [child_call] = [d["event"]["data"] for d in relayed if d["event"]["type"] == "tool.call"]
    assert child_call["name"] == "calculator"
    [child_done] = [d["event"]["data"] for d in relayed if d["event"]["type"] == "answer.done"]
    assert child_done["content"] == "42 it is."
    parent_first, child_first, child_second, parent_second = chat_requests(scripted_llm)
    [ask] = parent_first["tools"]
    assert ask["function"]["name"] == "ask_researcher"
    assert ask["function"]["description"] == (
        'Ask the agent "Researcher" to do a task and return its answer. Finds facts.'
    )
    # the sub-agent runs its own configuration; a tool needing approval is not offered
    # inside a sub-agent call (nobody could approve it)
    assert child_first["messages"] == [
        {"role": "system", "content": "You research."},
        {"role": "user", "content": "What is 6*7?"},
    ]
    assert tool_names(child_first) == ["calculator"]
    assert child_second["messages"][-1] == {"role": "tool", "tool_call_id": "c", "content": "42"}
    assert parent_second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "sub",
        "content": "42 it is.",
    }
    # the sub-agent's model calls are accounted to the sub-agent
    agents = list(UsageRecord.objects.order_by("created_at").values_list("agent_id", flat=True))
    assert agents == [parent.id, child.id, child.id, parent.id]


def test_sub_agents_are_not_offered_past_the_depth_limit(workspace, model, scripted_llm):
    child = create_agent(workspace=workspace, name="Child", slug="child")
    parent = create_agent(workspace=workspace, name="Parent", subagent_ids=[child.id])
    snapshot = agent_snapshot(agent=parent)
    scripted_llm.push("ok", "ok")
    run(snapshot, [user_message("hi")], depth=1)
    assert "ask_child" in tool_names(chat_requests(scripted_llm)[0])
    run(snapshot, [user_message("hi")], depth=2)
    assert "ask_child" not in tool_names(chat_requests(scripted_llm)[1])


def test_a_sub_agent_archived_after_the_snapshot_is_not_offered(workspace, model, scripted_llm):
    child = create_agent(workspace=workspace, name="Gone", slug="gone")
    parent = create_agent(workspace=workspace, name="Parent", subagent_ids=[child.id])
    snapshot = agent_snapshot(agent=parent)
    child.archived_at = child.created_at
    child.save()
    scripted_llm.push(Reply(tool_calls=[ToolCall("ask_gone", {"task": "x"}, id="g")]), "Sorry.")
    outcome, hooks = run(snapshot, [user_message("hi")])
    assert outcome.status == "completed"
    assert "ask_gone" not in tool_names(chat_requests(scripted_llm)[0])
    assert hooks.messages[1]["content"] == "There is no tool named 'ask_gone'."
    assert hooks.messages[1]["metadata"]["is_error"] is True


def test_knowledge_search_cites_its_sources(
    user, workspace, model, scripted_llm, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    kb = make_kb(user=user, workspace=workspace, name="Travel")
    with django_capture_on_commit_callbacks(execute=True):
        add_texts(
            user=user,
            kb=kb,
            texts={"lisbon.txt": "Tram 28 climbs through the Alfama district of Lisbon."},
        )
    agent = make_agent(workspace, builtin_tools=(), knowledge_base_ids=(kb.id,))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("knowledge_search", {"query": "tram Alfama"}, id="k")]),
        "Take tram 28 [1].",
    )
    outcome, hooks = run(agent, [user_message("How do I get to Alfama?")])
    assert outcome.status == "completed"
    assert tool_names(chat_requests(scripted_llm)[0]) == ["knowledge_search"]
    assert [c.document_name for c in outcome.citations] == ["lisbon.txt"]
    citation = outcome.citations[0]
    assert citation.knowledge_base_id == str(kb.id)
    assert "Tram 28" in citation.snippet
    tool_message = hooks.messages[1]
    assert tool_message["content"].startswith("Passages from the knowledge bases")
    assert [c["document_name"] for c in tool_message["metadata"]["citations"]] == ["lisbon.txt"]
    final = hooks.messages[-1]
    assert final["metadata"]["citations"] == tool_message["metadata"]["citations"]
    assert hooks.of("answer.done")[-1]["citations"] == tool_message["metadata"]["citations"]
    assert hooks.of("answer.done")[-1]["message_id"] == final["id"]
    uuid.UUID(final["id"])


def test_skills_are_listed_in_the_system_prompt_and_loaded_by_a_tool(
    workspace, model, scripted_llm
):
    version = make_skill_version(workspace=workspace, name="writing")
    agent = make_agent(workspace, builtin_tools=(), skill_ids=(version.id,))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("load_skill", {"name": "writing"}, id="s")]), "Done."
    )
    outcome, hooks = run(agent, [user_message("Write something.")])
    assert outcome.status == "completed"
    first = chat_requests(scripted_llm)[0]
    assert tool_names(first) == ["load_skill", "read_skill_file"]
    system = first["messages"][0]["content"]
    assert system.startswith("You are a helpful agent.\n\nYou have these skills.")
    assert system.endswith("- writing: The writing skill.")
    assert hooks.messages[1]["content"] == "---\nname: writing\n---\nDo writing."
    assert hooks.messages[1]["metadata"]["is_error"] is False
