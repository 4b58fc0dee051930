import pytest

from apps.agents.engine_types import AgentSnapshot
from apps.agents.exceptions import AgentNotFound
from apps.agents.selectors import (
    access_agent,
    agent_by_id_or_slug,
    agent_snapshot,
    agent_snapshot_by_id,
    agents_usable_by,
)
from apps.agents.services import agent_archive
from apps.users.choices import Role
from tests.agents.factories import (
    actor_for,
    make_agent,
    make_chat_model,
    make_knowledge_base,
    make_skill_version,
    make_tool,
)
from tests.users.factories import UserFactory, add_member, make_workspace

pytestmark = pytest.mark.django_db


def test_snapshot_carries_the_whole_configuration(user, workspace):
    model = make_chat_model(workspace=workspace)
    tool = make_tool(workspace=workspace)
    kb = make_knowledge_base(workspace=workspace)
    skill = make_skill_version(workspace=workspace)
    helper = make_agent(workspace=workspace, name="Helper")
    gone = make_agent(workspace=workspace, name="Gone")
    agent = make_agent(
        workspace=workspace,
        name="Main",
        system_prompt="Be exact.",
        model_id=model.id,
        temperature=0.2,
        max_tokens=500,
        reasoning=True,
        max_loops=4,
        wall_clock_seconds=60,
        tool_ids=[tool.id],
        skill_version_ids=[skill.id],
        knowledge_base_ids=[kb.id],
        subagent_ids=[helper.id, gone.id],
        builtin_tools=["calculator"],
        tools_requiring_approval=["lookup"],
        suggestions_enabled=True,
        memory_mode="none",
    )
    agent_archive(actor=actor_for(user=user, workspace=workspace), agent=gone)
    assert agent_snapshot(agent=agent) == AgentSnapshot(
        agent_id=agent.id,
        workspace_id=workspace.id,
        name="Main",
        system_prompt="Be exact.",
        model_id=model.id,
        temperature=0.2,
        max_tokens=500,
        reasoning=True,
        max_loops=4,
        wall_clock_seconds=60,
        tool_ids=(tool.id,),
        skill_ids=(skill.id,),
        knowledge_base_ids=(kb.id,),
        subagent_ids=(helper.id,),  # archived sub-agents are left out
        builtin_tools=("calculator",),
        tools_requiring_approval=frozenset({"lookup"}),
        suggestions_enabled=True,
        version=1,
        memory_mode="none",
    )
    assert agent_snapshot_by_id(workspace_id=workspace.id, agent_id=helper.id).name == "Helper"
    with pytest.raises(AgentNotFound):
        agent_snapshot_by_id(workspace_id=workspace.id, agent_id=gone.id)
    other = make_workspace(owner=UserFactory())
    with pytest.raises(AgentNotFound):
        agent_snapshot_by_id(workspace_id=other.id, agent_id=helper.id)


def test_agent_by_id_or_slug_finds_only_usable_agents(user, workspace):
    actor = actor_for(user=user, workspace=workspace)
    agent = make_agent(workspace=workspace, name="Bot", slug="bot")
    assert agent_by_id_or_slug(actor=actor, ref="bot") == agent
    assert agent_by_id_or_slug(actor=actor, ref=str(agent.id)) == agent
    for ref in ("nope", "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(AgentNotFound):
            agent_by_id_or_slug(actor=actor, ref=ref)
    agent_archive(actor=actor, agent=agent)
    with pytest.raises(AgentNotFound):
        agent_by_id_or_slug(actor=actor, ref="bot")
    assert access_agent(actor=actor, agent_id=agent.id).is_archived


def test_usable_agents_follow_the_sharing_rules(user, workspace):
    bob = UserFactory()
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    mine = make_agent(workspace=workspace, name="Private")
    shared = make_agent(workspace=workspace, name="Shared", visibility="workspace")
    granted = make_agent(workspace=workspace, name="Granted", visibility="members")
    granted.grants.create(user=bob, permission="use")
    make_agent(workspace=workspace, name="Members only", visibility="members")
    bobs = actor_for(user=bob, workspace=workspace)
    assert set(agents_usable_by(actor=bobs)) == {shared, granted}
    with pytest.raises(AgentNotFound):
        access_agent(actor=bobs, agent_id=mine.id)
    with pytest.raises(AgentNotFound):
        access_agent(actor=bobs, agent_id="not-a-uuid")
    alices = actor_for(user=user, workspace=workspace)
    assert agents_usable_by(actor=alices).count() == 4
    outsider = UserFactory()
    with pytest.raises(AgentNotFound):
        access_agent(
            actor=actor_for(user=outsider, workspace=outsider.workspaces.first()),
            agent_id=shared.id,
        )
