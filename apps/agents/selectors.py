"""Reads of agents, their versions and jobs; every one checks the actor's access.

Who sees an agent (see docs/agents.md): workspace admins and owners see every agent of
the workspace; other members see the agents they created, the `workspace`-visible ones,
and the `members`-visible ones granted to them. Anything else is 404, never 403.
"""

import difflib
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Exists, Model, OuterRef, Q, QuerySet, Subquery

from apps.agents.choices import GrantPermission, Visibility
from apps.agents.engine_types import AgentSnapshot
from apps.agents.exceptions import AgentJobNotFound, AgentNotFound, AgentVersionNotFound
from apps.agents.models import Agent, AgentGrant, AgentJob, AgentVersion, CodeInterpreterPolicy
from apps.knowledge.models import KnowledgeBase
from apps.providers.models import ProviderModel
from apps.skills.models import SkillVersion, Tool
from apps.users.actors import Actor
from apps.users.choices import Role

EXPORT_FORMAT = "agent-platform.agent"
EXPORT_FORMAT_VERSION = 1


def _visible_agents(*, actor: Actor) -> QuerySet[Agent]:
    """Agents of the actor's workspace the actor may see (archived included), annotated
    with `my_grant`: the permission granted to the actor, or None."""
    my_grant = AgentGrant.objects.filter(agent=OuterRef("pk"), user=actor.user)
    qs = Agent.objects.filter(workspace_id=actor.workspace_id).annotate(
        my_grant=Subquery(my_grant.values("permission")[:1])
    )
    if actor.has_role(Role.ADMIN):
        return qs
    return qs.filter(
        Q(created_by=actor.user)
        | Q(visibility=Visibility.WORKSPACE)
        | Q(Exists(my_grant), visibility=Visibility.MEMBERS)
    )


def access_agent(*, actor: Actor, agent_id: uuid.UUID | str) -> Agent:
    """An agent the actor may see, archived or not. Raises AgentNotFound (404) for an
    unknown id, another workspace's agent, or one not shared with the actor."""
    try:
        pk = uuid.UUID(str(agent_id))
    except ValueError as exc:
        raise AgentNotFound() from exc
    agent = _visible_agents(actor=actor).select_related("created_by").filter(pk=pk).first()
    if agent is None:
        raise AgentNotFound()
    return agent


def agent_list(*, actor: Actor, archived: bool = False, search: str = "") -> QuerySet[Agent]:
    """The agents the actor may see: active ones, or only archived ones."""
    qs = _visible_agents(actor=actor).filter(archived_at__isnull=not archived)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return qs.select_related("created_by")


# The referenced ids of an agent, by key of its serializer field.
REFERENCE_FIELDS = ("tool_ids", "skill_version_ids", "knowledge_base_ids", "subagent_ids")


def _reference_links() -> list[tuple[str, str, str]]:
    """(table, agent column, target column) of the four link tables, in REFERENCE_FIELDS
    order."""
    links = []
    for relation in (Agent.tools, Agent.skill_versions, Agent.knowledge_bases, Agent.subagents):
        field = relation.field
        links.append(
            (
                field.remote_field.through._meta.db_table,  # type: ignore[union-attr]
                field.m2m_column_name(),
                field.m2m_reverse_name(),
            )
        )
    return links


def agents_reference_ids(*, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, list[str]]]:
    """The tools, skill versions, knowledge bases and sub-agents each agent references
    (ids as sorted strings), in one query over the four link tables: no model instances,
    no query building per request and no prefetch caches pointing back at the agents."""
    found: dict[uuid.UUID, dict[str, list[str]]] = {
        agent_id: {name: [] for name in REFERENCE_FIELDS} for agent_id in agent_ids
    }
    if not agent_ids:
        return found
    quote = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(agent_ids))
    sql = " UNION ALL ".join(
        # Table and column names come from the models; the ids are bound parameters.
        f"SELECT {kind}, {quote(source)}, {quote(target)} FROM {quote(table)}"  # noqa: S608
        f" WHERE {quote(source)} IN ({marks})"
        for kind, (table, source, target) in enumerate(_reference_links())
    )
    pk = Agent._meta.pk
    assert pk is not None
    params = [pk.get_db_prep_value(agent_id, connection) for agent_id in agent_ids]
    with connection.cursor() as cursor:
        cursor.execute(sql, params * len(REFERENCE_FIELDS))
        rows = cursor.fetchall()
    for kind, agent_id, target_id in rows:
        # SQLite returns the hex text of a UUID, PostgreSQL a UUID.
        agent_key = agent_id if isinstance(agent_id, uuid.UUID) else uuid.UUID(agent_id)
        target = target_id if isinstance(target_id, uuid.UUID) else uuid.UUID(target_id)
        found[agent_key][REFERENCE_FIELDS[kind]].append(str(target))
    for references in found.values():
        for ids in references.values():
            ids.sort()
    return found


def agents_usable_by(*, actor: Actor) -> QuerySet[Agent]:
    """The agents the actor may chat with: those it sees, minus archived ones."""
    return _visible_agents(actor=actor).filter(archived_at__isnull=True)


def agent_by_id_or_slug(*, actor: Actor, ref: str) -> Agent:
    """A usable (not archived) agent by its id or its slug (e.g. the `model` of the
    OpenAI-compatible endpoint). Raises AgentNotFound."""
    qs = agents_usable_by(actor=actor)
    try:
        agent = qs.filter(pk=uuid.UUID(ref)).first()
    except ValueError:
        agent = qs.filter(slug=ref).first()
    if agent is None:
        raise AgentNotFound()
    return agent


def agent_can_edit(*, actor: Actor, agent: Agent) -> bool:
    """Whether the actor may change the agent's configuration (members and up only):
    admins/owners, its creator, or a member holding an `edit` grant (unless private)."""
    if not actor.has_role(Role.MEMBER):
        return False
    if agent_can_manage(actor=actor, agent=agent):
        return True
    if agent.visibility == Visibility.PRIVATE:
        return False
    grant = getattr(agent, "my_grant", None)
    if grant is None and not hasattr(agent, "my_grant"):
        grant = (
            AgentGrant.objects.filter(agent=agent, user=actor.user)
            .values_list("permission", flat=True)
            .first()
        )
    return grant == GrantPermission.EDIT


def agent_can_manage(*, actor: Actor, agent: Agent) -> bool:
    """Whether the actor may share, archive, unarchive or purge the agent: its creator
    (member and up) or a workspace admin/owner."""
    if actor.has_role(Role.ADMIN):
        return True
    return actor.has_role(Role.MEMBER) and agent.created_by_id == actor.user.pk


def agent_grants(*, agent: Agent) -> QuerySet[AgentGrant]:
    """The members an agent is granted to, with their users."""
    return AgentGrant.objects.filter(agent=agent).select_related("user")


def agent_versions(*, agent: Agent) -> QuerySet[AgentVersion]:
    """An agent's versions, newest first."""
    return AgentVersion.objects.filter(agent=agent).select_related("created_by")


def access_agent_version(*, agent: Agent, number: int) -> AgentVersion:
    """Version `number` of an agent the caller already accessed. Raises
    AgentVersionNotFound."""
    version = agent_versions(agent=agent).filter(number=number).first()
    if version is None:
        raise AgentVersionNotFound()
    return version


def agent_reference_ids(*, agent: Agent) -> dict[str, list[uuid.UUID]]:
    """The ids an agent refers to, by field, in a stable order."""
    return {
        "tool_ids": sorted(agent.tools.values_list("id", flat=True), key=str),
        "skill_version_ids": sorted(agent.skill_versions.values_list("id", flat=True), key=str),
        "knowledge_base_ids": sorted(agent.knowledge_bases.values_list("id", flat=True), key=str),
        "subagent_ids": sorted(agent.subagents.values_list("id", flat=True), key=str),
    }


def agent_snapshot(*, agent: Agent) -> AgentSnapshot:
    """The agent's configuration as the run engine uses it (archived sub-agents left
    out). Five queries."""
    refs = agent_reference_ids(agent=agent)
    active_subagents = set(
        agent.subagents.filter(archived_at__isnull=True).values_list("id", flat=True)
    )
    return AgentSnapshot(
        agent_id=agent.id,
        workspace_id=agent.workspace_id,
        name=agent.name,
        system_prompt=agent.system_prompt,
        model_id=agent.model_id,
        temperature=agent.temperature,
        max_tokens=agent.max_tokens,
        reasoning=agent.reasoning,
        max_loops=agent.max_loops,
        wall_clock_seconds=agent.wall_clock_seconds,
        tool_ids=tuple(refs["tool_ids"]),
        skill_ids=tuple(refs["skill_version_ids"]),
        knowledge_base_ids=tuple(refs["knowledge_base_ids"]),
        subagent_ids=tuple(i for i in refs["subagent_ids"] if i in active_subagents),
        builtin_tools=tuple(agent.builtin_tools),
        tools_requiring_approval=frozenset(agent.tools_requiring_approval),
        suggestions_enabled=agent.suggestions_enabled,
        version=agent.version,
        memory_mode=agent.memory_mode,
    )


def agent_snapshot_by_id(*, workspace_id: uuid.UUID, agent_id: uuid.UUID) -> AgentSnapshot:
    """The snapshot of an active agent of `workspace_id`, without an actor: for the engine
    calling a sub-agent its parent was configured with. Raises AgentNotFound."""
    agent = Agent.objects.filter(
        workspace_id=workspace_id, pk=agent_id, archived_at__isnull=True
    ).first()
    if agent is None:
        raise AgentNotFound()
    return agent_snapshot(agent=agent)


def agent_export(*, agent: Agent) -> dict[str, Any]:
    """The portable JSON document of an agent's configuration (what import takes).
    References carry their id and name; sharing, versions and ids are not exported."""
    model = agent.model
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "agent": {
            "name": agent.name,
            "slug": agent.slug,
            "description": agent.description,
            "avatar": agent.avatar,
            "system_prompt": agent.system_prompt,
            "model": {"id": str(model.id), "name": model.name} if model else None,
            "temperature": agent.temperature,
            "max_tokens": agent.max_tokens,
            "reasoning": agent.reasoning,
            "builtin_tools": list(agent.builtin_tools),
            "tools": [{"id": str(t.id), "name": t.name} for t in agent.tools.order_by("name")],
            "skill_versions": [
                {"id": str(v.id), "name": v.name, "number": v.number}
                for v in agent.skill_versions.order_by("name", "number")
            ],
            "knowledge_bases": [
                {"id": str(kb.id), "name": kb.name} for kb in agent.knowledge_bases.order_by("name")
            ],
            "subagents": [
                {"id": str(a.id), "slug": a.slug} for a in agent.subagents.order_by("slug")
            ],
            "memory_mode": agent.memory_mode,
            "max_loops": agent.max_loops,
            "wall_clock_seconds": agent.wall_clock_seconds,
            "suggestions_enabled": agent.suggestions_enabled,
            "opening_message": agent.opening_message,
            "starter_questions": list(agent.starter_questions),
            "tools_requiring_approval": list(agent.tools_requiring_approval),
        },
    }


def agent_job_list(*, actor: Actor) -> QuerySet[AgentJob]:
    """The actor's own jobs in the actor's workspace, newest first."""
    return AgentJob.objects.filter(workspace_id=actor.workspace_id, created_by=actor.user)


def access_agent_job(*, actor: Actor, job_id: uuid.UUID) -> AgentJob:
    """One of the actor's jobs. Raises AgentJobNotFound (another user's job included)."""
    job = agent_job_list(actor=actor).filter(pk=job_id).first()
    if job is None:
        raise AgentJobNotFound()
    return job


def agent_usage_labels(agent_ids: list[Any]) -> dict[Any, str]:
    """{agent id: name} for usage groups (registered with providers' usage summary).
    Agents deleted since keep no name: their groups fall back to the id."""
    return dict(Agent.objects.filter(pk__in=agent_ids).values_list("pk", "name"))


# --- version diff ---------------------------------------------------------------------

# Long text compared line by line; the rest value by value.
_TEXT_FIELDS = ("system_prompt", "description", "opening_message")
# Reference fields and the model (with its name field) their ids point at.
_REFERENCE_MODELS: dict[str, tuple[type[Model], str]] = {
    "model_id": (ProviderModel, "name"),
    "tool_ids": (Tool, "name"),
    "skill_version_ids": (SkillVersion, "name"),
    "knowledge_base_ids": (KnowledgeBase, "name"),
    "subagent_ids": (Agent, "name"),
}


@dataclass(frozen=True)
class DiffLine:
    """One line of a text field's diff: `op` is equal, delete or insert."""

    op: str
    text: str


@dataclass(frozen=True)
class FieldChange:
    """One configuration field that differs between two versions. References are shown
    by name (an id no longer found stays an id); text fields carry a line diff."""

    field: str
    before: Any
    after: Any
    lines: tuple[DiffLine, ...] = ()


def _line_diff(before: str, after: str) -> tuple[DiffLine, ...]:
    old, new = before.splitlines(), after.splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            lines += [DiffLine("equal", text) for text in old[i1:i2]]
            continue
        lines += [DiffLine("delete", text) for text in old[i1:i2]]
        lines += [DiffLine("insert", text) for text in new[j1:j2]]
    return tuple(lines)


def _reference_names(configs: list[dict[str, Any]]) -> dict[str, str]:
    """{id: name} of every object the configs refer to (one query per kind)."""
    names: dict[str, str] = {}
    for key, (model, name_field) in _REFERENCE_MODELS.items():
        ids: set[str] = set()
        for config in configs:
            value = config.get(key)
            if isinstance(value, list):
                ids.update(str(v) for v in value)
            elif value:
                ids.add(str(value))
        if ids:
            rows = model._default_manager.filter(pk__in=list(ids)).values_list("pk", name_field)
            names.update({str(pk): str(name) for pk, name in rows})
    return names


def agent_version_diff(*, agent: Agent, before: int, after: int) -> list[FieldChange]:
    """The configuration fields that differ from version `before` to version `after` of
    an agent the caller already accessed, in the order of the configuration. Raises
    AgentVersionNotFound."""
    old = access_agent_version(agent=agent, number=before).config
    new = access_agent_version(agent=agent, number=after).config
    names = _reference_names([old, new])

    def shown(key: str, value: Any) -> Any:
        if key not in _REFERENCE_MODELS:
            return value
        if isinstance(value, list):
            return sorted(names.get(str(v), str(v)) for v in value)
        return names.get(str(value), str(value)) if value else None

    changes = []
    for key in list(dict.fromkeys([*old, *new])):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        lines: tuple[DiffLine, ...] = ()
        if key in _TEXT_FIELDS:
            lines = _line_diff(a or "", b or "")
        changes.append(
            FieldChange(field=key, before=shown(key, a), after=shown(key, b), lines=lines)
        )
    return changes


def code_interpreter_policy(*, workspace_id: uuid.UUID) -> CodeInterpreterPolicy:
    """The workspace's code interpreter policy (an unsaved default, off, when it has
    none; docs/sandbox.md)."""
    found = CodeInterpreterPolicy.objects.filter(workspace_id=workspace_id).first()
    return found or CodeInterpreterPolicy(workspace_id=workspace_id)


def skill_scripts(
    *, workspace_id: uuid.UUID, skill_version_ids: list[uuid.UUID]
) -> dict[str, tuple[uuid.UUID, list[str]]]:
    """skill name -> (version id, its Python scripts) for the skill versions the workspace
    can see."""
    visible = Q(skill__workspace_id=workspace_id) | Q(skill__workspace__isnull=True)
    out: dict[str, tuple[uuid.UUID, list[str]]] = {}
    for version in SkillVersion.objects.filter(visible, id__in=skill_version_ids):
        paths = list(
            version.files.filter(path__endswith=".py").values_list("path", flat=True)[:100]
        )
        if paths:
            out[version.name] = (version.id, paths)
    return out
