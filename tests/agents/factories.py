"""Agents for tests, made through the services (so each has its version 1)."""

from typing import Any

from apps.agents.models import Agent
from apps.agents.services import agent_create
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership


def actor_for(*, user: Any, workspace: Any) -> Actor:
    """The session actor of `user` (who must be a member) in `workspace`."""
    membership = Membership.objects.get(user=user, workspace=workspace)
    return Actor(user=user, workspace=workspace, role=Role(membership.role))


def make_agent(
    *,
    workspace: Any,
    user: Any = None,
    slug: str | None = None,
    visibility: str = "private",
    **values: Any,
) -> Agent:
    """An agent of `workspace` created by `user` (default: the workspace's creator).

    `values` are configuration fields as the API takes them: name, system_prompt,
    model_id, tool_ids, skill_version_ids, knowledge_base_ids, subagent_ids,
    builtin_tools, tools_requiring_approval, max_loops, ... (ids may be UUIDs).
    """
    user = user or workspace.created_by
    values.setdefault("name", "Helper")
    return agent_create(
        actor=actor_for(user=user, workspace=workspace),
        values=values,
        slug=slug,
        visibility=visibility,
    )


def make_chat_model(*, workspace: Any, name: str = "gpt-test", base_url: str = "") -> Any:
    """A chat model of a workspace provider (not callable unless base_url is served)."""
    from apps.providers.models import Provider, ProviderModel

    provider = Provider.objects.create(
        workspace=workspace, name=f"prov-{name}", kind="openai", base_url=base_url
    )
    return ProviderModel.objects.create(provider=provider, name=name, kind="chat")


def make_tool(*, workspace: Any, name: str = "lookup") -> Any:
    from apps.skills.models import Tool

    return Tool.objects.create(
        workspace=workspace, name=name, description=f"The {name} tool.", source="openapi"
    )


def make_knowledge_base(*, workspace: Any, name: str = "Docs") -> Any:
    from apps.knowledge.models import KnowledgeBase

    return KnowledgeBase.objects.create(workspace=workspace, name=name)


def make_skill_version(*, workspace: Any, name: str = "writing", number: int = 1) -> Any:
    from apps.skills.models import Skill, SkillVersion

    skill, _ = Skill.objects.get_or_create(
        workspace=workspace, name=name, defaults={"description": f"The {name} skill."}
    )
    return SkillVersion.objects.create(
        skill=skill,
        number=number,
        name=name,
        description=f"The {name} skill.",
        skill_md=f"---\nname: {name}\n---\nDo {name}.",
        source="api",
    )
