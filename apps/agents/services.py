"""Writes of agents: create, update (every change keeps a version), sharing, archive,
purge, duplicate, import, restore a version; and the asynchronous helper jobs.

Permissions (documented in docs/agents.md): writing needs the member role or higher;
changing an agent needs `agent_can_edit`; sharing, archiving and purging need
`agent_can_manage` (its creator or a workspace admin/owner).
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Model, ProtectedError, Q, RestrictedError
from django.utils import timezone
from django.utils.text import slugify

from apps.agents.choices import (
    AgentBuiltinTool,
    AgentJobKind,
    AgentJobStatus,
    GrantPermission,
    Visibility,
)
from apps.agents.exceptions import (
    AgentArchived,
    AgentInUse,
    AgentJobFinished,
    AgentNotArchived,
    AgentSlugTaken,
)
from apps.agents.models import (
    Agent,
    AgentGrant,
    AgentJob,
    AgentVersion,
    CodeExecution,
    CodeInterpreterPolicy,
)
from apps.agents.sandbox import HostIds, SandboxLimits, SandboxUnavailable, run_python
from apps.agents.selectors import (
    _visible_agents,
    access_agent_version,
    agent_can_edit,
    agent_can_manage,
    agent_reference_ids,
    code_interpreter_policy,
)
from apps.core.events import AgentJobCompletedNotice, RunError
from apps.core.exceptions import (
    ApplicationError,
    ErrorDetail,
    PermissionDenied,
    ValidationFailed,
)
from apps.core.jobs import JobKind, job_claim, job_enqueue, job_finish, job_heartbeat
from apps.core.outbox import outbox_emit
from apps.files.exceptions import ModelWithoutVision
from apps.files.services import (
    attachments_prepare,
    file_read_bytes,
    workspace_delete,
    workspace_files,
    workspace_write_bytes,
)
from apps.files.services import limit as files_limit
from apps.knowledge.models import KnowledgeBase
from apps.providers.choices import Capability, ModelKind
from apps.providers.exceptions import ProviderError
from apps.providers.models import ProviderModel
from apps.providers.services import chat_complete, model_info
from apps.providers.types import UsageContext
from apps.skills.models import SkillVersion, Tool
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership, User
from apps.users.services import audit_record

logger = logging.getLogger(__name__)

# Configuration fields copied as they are (the rest are references, by id).
SCALAR_FIELDS = (
    "name",
    "description",
    "avatar",
    "system_prompt",
    "temperature",
    "max_tokens",
    "reasoning",
    "builtin_tools",
    "memory_mode",
    "max_loops",
    "wall_clock_seconds",
    "suggestions_enabled",
    "opening_message",
    "starter_questions",
    "tools_requiring_approval",
)
M2M_FIELDS = {
    "tool_ids": "tools",
    "skill_version_ids": "skill_versions",
    "knowledge_base_ids": "knowledge_bases",
    "subagent_ids": "subagents",
}
REFERENCE_FIELDS = ("model_id", *M2M_FIELDS)
CONFIG_FIELDS = (*SCALAR_FIELDS, *REFERENCE_FIELDS)

RUN_JOB_TASK = "agents.run_job"
JOB_TIMEOUT_SECONDS = 120
JOB_QUEUED_LIMIT = timedelta(hours=1)
# A running job heartbeats every JOB_HEARTBEAT_SECONDS while it waits for the model; the
# stale sweep fails it once its worker has been silent for JOB_STALE_AFTER.
JOB_HEARTBEAT_SECONDS = 15.0
JOB_STALE_AFTER = timedelta(seconds=60)


# --- references ---------------------------------------------------------------------


def _usable_models(*, workspace_id: uuid.UUID) -> Any:
    return ProviderModel.objects.filter(
        Q(provider__workspace_id=workspace_id) | Q(provider__workspace__isnull=True),
        kind=ModelKind.CHAT,
    )


def _reference_querysets(*, actor: Actor) -> dict[str, Any]:
    ws = actor.workspace_id
    return {
        "tool_ids": Tool.objects.filter(workspace_id=ws),
        "skill_version_ids": SkillVersion.objects.filter(
            Q(skill__workspace_id=ws) | Q(skill__workspace__isnull=True)
        ),
        "knowledge_base_ids": KnowledgeBase.objects.filter(workspace_id=ws),
        "subagent_ids": _visible_agents(actor=actor).filter(archived_at__isnull=True),
    }


_REFERENCE_LABELS = {
    "model_id": "chat model",
    "tool_ids": "tool",
    "skill_version_ids": "skill version",
    "knowledge_base_ids": "knowledge base",
    "subagent_ids": "agent",
}


def _resolve_references(
    *, actor: Actor, values: dict[str, Any], agent: Agent | None, strict: bool = True
) -> dict[str, Any]:
    """Turn the reference ids present in `values` into objects of the actor's workspace.

    strict: an unknown id is a ValidationFailed naming the field (`tool_ids[1]`);
    otherwise unknown ids are dropped (restoring an old version whose tool was deleted).
    """
    resolved: dict[str, Any] = {}
    errors: list[ErrorDetail] = []
    if "model_id" in values:
        model_id = values["model_id"]
        if model_id is None:
            resolved["model_id"] = None
        else:
            qs = _usable_models(workspace_id=actor.workspace_id)
            if agent is None or agent.model_id != uuid.UUID(str(model_id)):
                qs = qs.filter(is_enabled=True, provider__is_enabled=True)
            model = qs.filter(pk=model_id).first()
            if model is None and strict:
                errors.append(
                    {"field": "model_id", "message": "No enabled chat model with this id."}
                )
            resolved["model_id"] = model
    querysets = _reference_querysets(actor=actor)
    for field, qs in querysets.items():
        if field not in values:
            continue
        ids = [uuid.UUID(str(i)) for i in values[field]]
        found = {obj.pk: obj for obj in qs.filter(pk__in=ids)}
        objects = []
        for index, pk in enumerate(ids):
            if field == "subagent_ids" and agent is not None and pk == agent.pk:
                errors.append(
                    {"field": f"{field}[{index}]", "message": "An agent cannot call itself."}
                )
                continue
            obj = found.get(pk)
            if obj is None:
                if strict:
                    label = _REFERENCE_LABELS[field]
                    errors.append({"field": f"{field}[{index}]", "message": f"No such {label}."})
                continue
            objects.append(obj)
        resolved[field] = objects
    skill_versions = resolved.get("skill_version_ids") or []
    seen_skills: set[uuid.UUID] = set()
    for index, version in enumerate(skill_versions):
        if version.skill_id in seen_skills:
            errors.append(
                {
                    "field": f"skill_version_ids[{index}]",
                    "message": "Only one version of a skill can be pinned.",
                }
            )
        seen_skills.add(version.skill_id)
    if errors:
        raise ValidationFailed(_summary(errors), details=errors)
    return resolved


def _summary(errors: Sequence[ErrorDetail]) -> str:
    return "Invalid input: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)


def _apply(*, agent: Agent, values: dict[str, Any], resolved: dict[str, Any]) -> None:
    """Set scalar fields and the model on the instance (M2M after saving)."""
    for field in SCALAR_FIELDS:
        if field in values:
            setattr(agent, field, values[field])
    if "model_id" in resolved:
        agent.model = resolved["model_id"]


def _apply_m2m(*, agent: Agent, resolved: dict[str, Any]) -> None:
    for field, relation in M2M_FIELDS.items():
        if field in resolved:
            getattr(agent, relation).set(resolved[field])


def agent_config(*, agent: Agent) -> dict[str, Any]:
    """Every configurable field of an agent, references as sorted id strings: what a
    version stores and what tells whether an update changed anything."""
    config: dict[str, Any] = {field: getattr(agent, field) for field in SCALAR_FIELDS}
    config["builtin_tools"] = list(config["builtin_tools"])
    config["starter_questions"] = list(config["starter_questions"])
    config["tools_requiring_approval"] = list(config["tools_requiring_approval"])
    config["model_id"] = str(agent.model_id) if agent.model_id else None
    for field, ids in agent_reference_ids(agent=agent).items():
        config[field] = [str(i) for i in ids]
    return config


def _record_version(*, agent: Agent, actor: Actor, note: str) -> AgentVersion:
    return AgentVersion.objects.create(
        agent=agent,
        number=agent.version,
        config=agent_config(agent=agent),
        note=note[:200],
        created_by=actor.user,
    )


# --- slugs --------------------------------------------------------------------------


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _free_slug(*, workspace_id: uuid.UUID, base: str, exclude: uuid.UUID | None = None) -> str:
    """`base`, or `base-2`, `base-3`, ... : the first slug no agent of the workspace has."""
    base = (slugify(base)[:90].strip("-") or "agent").lower()
    if _is_uuid(base):
        base = f"agent-{base[:8]}"
    taken_qs = Agent.objects.filter(workspace_id=workspace_id, slug__startswith=base)
    if exclude is not None:
        taken_qs = taken_qs.exclude(pk=exclude)
    taken = set(taken_qs.values_list("slug", flat=True))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _check_slug_free(*, workspace_id: uuid.UUID, slug: str, exclude: uuid.UUID | None) -> None:
    qs = Agent.objects.filter(workspace_id=workspace_id, slug=slug)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    if qs.exists():
        raise AgentSlugTaken(field="slug")


# --- agents -------------------------------------------------------------------------


def _audit(*, actor: Actor, agent: Agent, action: str, **metadata: Any) -> None:
    audit_record(
        action=action,
        actor_user=actor.user,
        workspace_id=agent.workspace_id,
        target_type="agent",
        target_id=str(agent.pk),
        metadata={"name": agent.name, "slug": agent.slug, **metadata},
    )


def _require_edit(*, actor: Actor, agent: Agent) -> None:
    actor.require_role(Role.MEMBER)
    if not agent_can_edit(actor=actor, agent=agent):
        raise PermissionDenied("You may use this agent but not change it.")


def _require_manage(*, actor: Actor, agent: Agent) -> None:
    actor.require_role(Role.MEMBER)
    if not agent_can_manage(actor=actor, agent=agent):
        raise PermissionDenied("Only the agent's creator or a workspace admin may do this.")


def _create(
    *,
    actor: Actor,
    values: dict[str, Any],
    resolved: dict[str, Any],
    slug: str | None,
    visibility: str,
    note: str,
) -> Agent:
    ws = actor.workspace_id
    if slug:
        _check_slug_free(workspace_id=ws, slug=slug, exclude=None)
    else:
        slug = _free_slug(workspace_id=ws, base=values.get("name") or "agent")
    agent = Agent(workspace_id=ws, created_by=actor.user, slug=slug, visibility=visibility)
    _apply(agent=agent, values=values, resolved=resolved)
    try:
        with transaction.atomic():
            agent.save()
            _apply_m2m(agent=agent, resolved=resolved)
            _record_version(agent=agent, actor=actor, note=note)
    except IntegrityError as exc:
        # Two creations raced for the same slug.
        raise AgentSlugTaken(field="slug") from exc
    return agent


def agent_create(
    *,
    actor: Actor,
    values: dict[str, Any],
    slug: str | None = None,
    visibility: str = Visibility.PRIVATE,
) -> Agent:
    """Create an agent in the actor's workspace (version 1). `values` holds configuration
    fields (CONFIG_FIELDS); references are ids. Needs member. Raises ValidationFailed for
    a reference outside the workspace, AgentSlugTaken for a slug in use."""
    actor.require_role(Role.MEMBER)
    resolved = _resolve_references(actor=actor, values=values, agent=None)
    return _create(
        actor=actor,
        values=values,
        resolved=resolved,
        slug=slug,
        visibility=visibility,
        note="Created",
    )


def agent_update(*, actor: Actor, agent: Agent, values: dict[str, Any]) -> Agent:
    """Change some fields. A configuration change bumps `version` and stores the new
    configuration as a version (the previous one is kept); no change, no new version.
    `slug` and `visibility` are not versioned; changing visibility needs manage.
    Raises AgentArchived, PermissionDenied, ValidationFailed, AgentSlugTaken."""
    _require_edit(actor=actor, agent=agent)
    if agent.is_archived:
        raise AgentArchived()
    visibility = values.get("visibility")
    if visibility is not None and visibility != agent.visibility:
        _require_manage(actor=actor, agent=agent)
    slug = values.get("slug")
    if slug is not None and slug != agent.slug:
        _check_slug_free(workspace_id=agent.workspace_id, slug=slug, exclude=agent.pk)
    resolved = _resolve_references(actor=actor, values=values, agent=agent)
    try:
        with transaction.atomic():
            locked = Agent.objects.select_for_update().get(pk=agent.pk)
            before = agent_config(agent=locked)
            _apply(agent=locked, values=values, resolved=resolved)
            if slug is not None:
                locked.slug = slug
            if visibility is not None:
                locked.visibility = visibility
            locked.save()
            _apply_m2m(agent=locked, resolved=resolved)
            if agent_config(agent=locked) != before:
                locked.version += 1
                locked.save(update_fields=["version", "updated_at"])
                _record_version(agent=locked, actor=actor, note="Updated")
    except IntegrityError as exc:
        raise AgentSlugTaken(field="slug") from exc
    if visibility is not None and visibility != agent.visibility:
        _audit(actor=actor, agent=locked, action="agent.sharing", visibility=visibility)
    _copy_state(source=locked, target=agent)
    return agent


def _copy_state(*, source: Agent, target: Agent) -> None:
    for f in Agent._meta.concrete_fields:
        setattr(target, f.attname, getattr(source, f.attname))
    target._state.fields_cache.clear()  # type: ignore[attr-defined]


def agent_version_restore(*, actor: Actor, agent: Agent, number: int) -> Agent:
    """Make version `number`'s configuration current again, as a new version (nothing is
    lost; restoring the current configuration is a no-op). References deleted since are
    dropped. Raises AgentVersionNotFound, AgentArchived, PermissionDenied."""
    _require_edit(actor=actor, agent=agent)
    if agent.is_archived:
        raise AgentArchived()
    version = access_agent_version(agent=agent, number=number)
    config = {k: v for k, v in version.config.items() if k in CONFIG_FIELDS}
    resolved = _resolve_references(actor=actor, values=config, agent=agent, strict=False)
    with transaction.atomic():
        locked = Agent.objects.select_for_update().get(pk=agent.pk)
        before = agent_config(agent=locked)
        _apply(agent=locked, values=config, resolved=resolved)
        locked.save()
        _apply_m2m(agent=locked, resolved=resolved)
        if agent_config(agent=locked) != before:
            locked.version += 1
            locked.save(update_fields=["version", "updated_at"])
            _record_version(agent=locked, actor=actor, note=f"Restored version {number}")
    _copy_state(source=locked, target=agent)
    return agent


def agent_archive(*, actor: Actor, agent: Agent) -> Agent:
    """Archive (the API's delete): hidden from lists and unusable, kept until purged.
    Idempotent. Needs manage."""
    _require_manage(actor=actor, agent=agent)
    if agent.archived_at is None:
        agent.archived_at = timezone.now()
        agent.archived_by = actor.user
        agent.save(update_fields=["archived_at", "archived_by", "updated_at"])
        _audit(actor=actor, agent=agent, action="agent.archive")
    return agent


def agent_unarchive(*, actor: Actor, agent: Agent) -> Agent:
    """Bring an archived agent back. Idempotent. Needs manage."""
    _require_manage(actor=actor, agent=agent)
    if agent.archived_at is not None:
        agent.archived_at = None
        agent.archived_by = None
        agent.save(update_fields=["archived_at", "archived_by", "updated_at"])
        _audit(actor=actor, agent=agent, action="agent.unarchive")
    return agent


def agent_purge(*, actor: Actor, agent: Agent) -> None:
    """Delete an archived agent for good, with its versions and grants. Needs manage.
    Raises AgentNotArchived, or AgentInUse when other rows still protect it."""
    _require_manage(actor=actor, agent=agent)
    if agent.archived_at is None:
        raise AgentNotArchived()
    agent_id = agent.pk
    try:
        with transaction.atomic():
            agent.delete()
            agent.pk = agent_id
            _audit(actor=actor, agent=agent, action="agent.purge")
    except (ProtectedError, RestrictedError) as exc:
        raise AgentInUse() from exc


def agent_duplicate(*, actor: Actor, agent: Agent, name: str | None = None) -> Agent:
    """A private copy of an agent the actor can see, owned by the actor, at version 1.
    Sub-agents the actor cannot see are left out. Needs member."""
    actor.require_role(Role.MEMBER)
    values = agent_config(agent=agent)
    values["name"] = name or f"{agent.name} (copy)"[:100]
    resolved = _resolve_references(actor=actor, values=values, agent=None, strict=False)
    if agent.model_id is not None:
        # Keep the source's model even if it was disabled since.
        resolved["model_id"] = agent.model
    return _create(
        actor=actor,
        values=values,
        resolved=resolved,
        slug=None,
        visibility=Visibility.PRIVATE,
        note=f"Duplicated from {agent.slug} version {agent.version}",
    )


@dataclass(frozen=True)
class GrantInput:
    user_id: uuid.UUID
    permission: str = GrantPermission.USE


def agent_set_sharing(
    *, actor: Actor, agent: Agent, visibility: str, grants: Iterable[GrantInput]
) -> Agent:
    """Set who sees the agent: its visibility and the full list of named grants (which
    only take effect with `members` visibility, plus `edit` grants with `workspace`).
    Replaces the previous grants. Needs manage. Raises ValidationFailed for a user who
    is not a member of the workspace."""
    _require_manage(actor=actor, agent=agent)
    grants = list(grants)
    wanted = {g.user_id: g.permission for g in grants}
    members = set(
        Membership.objects.filter(
            workspace_id=agent.workspace_id, user_id__in=list(wanted)
        ).values_list("user_id", flat=True)
    )
    errors: list[ErrorDetail] = [
        {"field": f"grants[{i}].user_id", "message": "Not a member of this workspace."}
        for i, g in enumerate(grants)
        if g.user_id not in members
    ]
    if errors:
        raise ValidationFailed(_summary(errors), details=errors)
    with transaction.atomic():
        agent.visibility = visibility
        agent.save(update_fields=["visibility", "updated_at"])
        AgentGrant.objects.filter(agent=agent).exclude(user_id__in=list(wanted)).delete()
        existing = {g.user_id: g for g in AgentGrant.objects.filter(agent=agent)}
        for user_id, permission in wanted.items():
            grant = existing.get(user_id)
            if grant is None:
                AgentGrant.objects.create(
                    agent=agent, user_id=user_id, permission=permission, granted_by=actor.user
                )
            elif grant.permission != permission:
                grant.permission = permission
                grant.granted_by = actor.user
                grant.save(update_fields=["permission", "granted_by", "updated_at"])
        _audit(
            actor=actor,
            agent=agent,
            action="agent.sharing",
            visibility=visibility,
            grants={str(user_id): permission for user_id, permission in wanted.items()},
        )
    return agent


def _resolve_import_reference(*, qs: Any, ref: dict[str, Any], name_field: str) -> Model | None:
    """By id within the workspace first, else by name when exactly one object has it."""
    ref_id = ref.get("id")
    if ref_id is not None:
        obj = qs.filter(pk=ref_id).first()
        if obj is not None:
            return obj
    name = ref.get(name_field)
    if name:
        matches = list(qs.filter(**{name_field: name})[:2])
        if len(matches) == 1:
            return matches[0]
    return None


def agent_import(*, actor: Actor, document: dict[str, Any]) -> Agent:
    """Create an agent from an export document (already shape-validated). References
    resolve by id in this workspace, else by name (slug for agents); one that resolves to
    nothing is a ValidationFailed naming it (`agent.tools[1]`). A slug in use gets a
    suffix. The new agent is private to the actor. Needs member."""
    actor.require_role(Role.MEMBER)
    data = document["agent"]
    errors: list[ErrorDetail] = []
    querysets = _reference_querysets(actor=actor)
    resolved: dict[str, Any] = {}
    model_ref = data.get("model")
    resolved["model_id"] = None
    if model_ref:
        model = _resolve_import_reference(
            qs=_usable_models(workspace_id=actor.workspace_id).filter(
                is_enabled=True, provider__is_enabled=True
            ),
            ref=model_ref,
            name_field="name",
        )
        if model is None:
            errors.append({"field": "agent.model", "message": "No enabled chat model matches."})
        resolved["model_id"] = model
    plan = {
        "tools": ("tool_ids", "name"),
        "skill_versions": ("skill_version_ids", "name"),
        "knowledge_bases": ("knowledge_base_ids", "name"),
        "subagents": ("subagent_ids", "slug"),
    }
    for key, (field, name_field) in plan.items():
        objects = []
        for index, ref in enumerate(data.get(key) or []):
            qs = querysets[field]
            if key == "skill_versions" and ref.get("number") is not None:
                qs = qs.filter(number=ref["number"])
            obj = _resolve_import_reference(qs=qs, ref=ref, name_field=name_field)
            if obj is None:
                label = _REFERENCE_LABELS[field]
                errors.append(
                    {"field": f"agent.{key}[{index}]", "message": f"No matching {label} here."}
                )
            else:
                objects.append(obj)
        resolved[field] = objects
    if errors:
        raise ValidationFailed(_summary(errors), details=errors)
    values = {field: data[field] for field in SCALAR_FIELDS if field in data}
    slug = _free_slug(workspace_id=actor.workspace_id, base=data.get("slug") or data["name"])
    return _create(
        actor=actor,
        values=values,
        resolved=resolved,
        slug=slug,
        visibility=Visibility.PRIVATE,
        note="Imported",
    )


# --- jobs ---------------------------------------------------------------------------


def agent_job_submit(*, actor: Actor, kind: str, input: dict[str, Any]) -> AgentJob:
    """Queue a helper job for the actor; it runs in a Celery worker after commit.
    Needs member."""
    actor.require_role(Role.MEMBER)
    if kind == AgentJobKind.GENERATE_AGENT and input.get("tool_ids"):
        resolved = _resolve_references(
            actor=actor, values={"tool_ids": input["tool_ids"]}, agent=None
        )
        input = {**input, "tool_ids": [str(t.pk) for t in resolved["tool_ids"]]}
    with transaction.atomic():
        job = AgentJob.objects.create(
            workspace_id=actor.workspace_id, created_by=actor.user, kind=kind, input=input
        )
        job_enqueue(RUN_JOB_TASK, str(job.pk))
    return job


def agent_job_cancel(*, actor: Actor, job: AgentJob) -> AgentJob:
    """Cancel a queued or running job (a running one's late result is discarded).
    Idempotent for a cancelled job; AgentJobFinished for a succeeded or failed one."""
    actor.require_role(Role.MEMBER)
    updated = job_finish(
        AgentJob,
        job.pk,
        status=AgentJobStatus.CANCELLED,
        code="cancelled",
        reason="Cancelled by the user.",
        from_statuses=[AgentJobStatus.QUEUED, AgentJobStatus.RUNNING],
    )
    job.refresh_from_db()
    if not updated and job.status != AgentJobStatus.CANCELLED:
        raise AgentJobFinished()
    return job


def agent_job_claim(*, job_id: uuid.UUID | str) -> AgentJob | None:
    """queued -> running, once: None when the job is gone or not queued any more (a
    redelivered task, a cancelled job)."""
    claimed = job_claim(
        AgentJob,
        job_id,
        from_statuses=[AgentJobStatus.QUEUED],
        status=AgentJobStatus.RUNNING,
    )
    if not claimed:
        return None
    return AgentJob.objects.get(pk=job_id)


def agent_job_finish(
    *,
    job_id: uuid.UUID | str,
    status: str,
    result: dict[str, Any] | None = None,
    error_code: str = "",
    error_message: str = "",
) -> bool:
    """running -> a terminal status, once. False when the job had already ended (e.g.
    cancelled meanwhile, or failed by the stale sweep: the result is discarded)."""
    with transaction.atomic():
        finished = job_finish(
            AgentJob,
            job_id,
            status=status,
            code=error_code,
            reason=error_message,
            from_statuses=[AgentJobStatus.RUNNING],
            result=result,
        )
        if finished:  # its outbound event (webhooks), in the same transaction
            job = AgentJob.objects.get(pk=job_id)
            event = AgentJobCompletedNotice(
                job_id=job.pk,
                kind=str(job.kind),
                status=status,
                error=RunError(code=error_code, message=error_message) if error_code else None,
            )
            outbox_emit(event, workspace_id=job.workspace_id)
    return finished


AGENT_JOBS = JobKind(
    name="agents.job",
    model=AgentJob,
    stale_after=JOB_STALE_AFTER,
    stale_status=AgentJobStatus.FAILED,
    stale_code="job_expired",
    stale_reason="The worker running the job stopped before it finished; submit it again.",
    queued_statuses=frozenset({AgentJobStatus.QUEUED}),
    queued_after=JOB_QUEUED_LIMIT,
    queued_code="job_expired",
    queued_reason="No worker picked the job up in time; submit it again.",
)
"""Agent jobs in the stale sweep (registered by the app's `ready`)."""


# --- what the helper jobs ask the model ----------------------------------------------

GENERATE_SYSTEM_PROMPT = """You design AI agents for an agent platform.
From the user's description, write the agent's configuration as ONE JSON object and nothing
else (no prose, no code fence), with exactly these keys:
  "name": a short name (at most 60 characters),
  "description": one or two sentences saying what the agent does,
  "system_prompt": the complete system prompt: role, goals, tone, steps, constraints,
  "opening_message": the first message the agent shows a user,
  "starter_questions": a list of up to 4 short questions a user could start with,
  "tool_ids": the ids of the available tools the agent needs (possibly empty),
  "builtin_tools": which of the built-in tools it needs (possibly empty).
Answer in the language of the description."""

OPTIMIZE_SYSTEM_PROMPT = """You improve system prompts for AI agents.
Rewrite the system prompt the user gives you so that it is clear, specific and complete:
state the role, the goals, the steps to follow, the output format and the constraints;
remove contradictions and vagueness; keep every requirement of the original; keep its
language. Reply with ONE JSON object and nothing else (no prose, no code fence):
  {"system_prompt": "<the improved prompt>", "changes": ["<what you changed and why>", ...]}"""


class InvalidModelOutput(Exception):
    """The model's reply was not the JSON object asked for."""


def _parse_json_object(text: str) -> dict[str, Any]:
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    start, end = body.find("{"), body.rfind("}")
    if start == -1 or end <= start:
        raise InvalidModelOutput("The model did not reply with a JSON object.")
    try:
        value = json.loads(body[start : end + 1])
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(f"The model's reply is not valid JSON ({exc.msg}).") from exc
    if not isinstance(value, dict):
        raise InvalidModelOutput("The model did not reply with a JSON object.")
    return value


def _text(value: Any, *, key: str, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidModelOutput(f'The model\'s "{key}" is not a string.')
    value = value.strip()
    if required and not value:
        raise InvalidModelOutput(f'The model\'s reply has no "{key}".')
    return value[:limit]


def _string_list(value: Any, *, key: str, limit: int, item_limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidModelOutput(f'The model\'s "{key}" is not a list of strings.')
    return [v.strip()[:item_limit] for v in value if v.strip()][:limit]


def generate_agent_messages(*, job_input: dict[str, Any], tools: Sequence[Tool]) -> list[dict]:
    """The chat messages that ask the model for an agent draft."""
    lines = [f"Description of the agent:\n{job_input['description']}", "", "Available tools:"]
    lines += [f"- id {t.pk}: {t.name}: {t.description[:300]}" for t in tools] or ["(none)"]
    lines += ["", "Built-in tools:"]
    lines += [f"- {choice.value}: {choice.label}" for choice in AgentBuiltinTool]
    return [
        {"role": "system", "content": GENERATE_SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def generate_agent_result(*, text: str, tools: Sequence[Tool]) -> dict[str, Any]:
    """The draft from the model's reply: validated, trimmed to the field limits, with
    tools narrowed to the ones offered. Raises InvalidModelOutput."""
    reply = _parse_json_object(text)
    offered = {str(t.pk) for t in tools}
    builtin = {c.value for c in AgentBuiltinTool}
    tool_ids = _string_list(reply.get("tool_ids"), key="tool_ids", limit=100, item_limit=64)
    builtins = _string_list(
        reply.get("builtin_tools"), key="builtin_tools", limit=10, item_limit=64
    )
    return {
        "name": _text(reply.get("name"), key="name", limit=100, required=True),
        "description": _text(reply.get("description"), key="description", limit=2000),
        "system_prompt": _text(
            reply.get("system_prompt"), key="system_prompt", limit=100_000, required=True
        ),
        "opening_message": _text(reply.get("opening_message"), key="opening_message", limit=4000),
        "starter_questions": _string_list(
            reply.get("starter_questions"), key="starter_questions", limit=4, item_limit=300
        ),
        "tool_ids": [i for i in dict.fromkeys(tool_ids) if i in offered],
        "builtin_tools": [b for b in dict.fromkeys(builtins) if b in builtin],
    }


def optimize_prompt_messages(*, job_input: dict[str, Any]) -> list[dict]:
    """The chat messages that ask the model to improve a system prompt."""
    content = f"System prompt to improve:\n<<<\n{job_input['system_prompt']}\n>>>"
    if job_input.get("goal"):
        content += f"\n\nWhat the improvement should achieve:\n{job_input['goal']}"
    return [
        {"role": "system", "content": OPTIMIZE_SYSTEM_PROMPT},
        {"role": "user", "content": content},
    ]


def optimize_prompt_result(*, text: str) -> dict[str, Any]:
    """The improved prompt from the model's reply. Raises InvalidModelOutput."""
    reply = _parse_json_object(text)
    return {
        "system_prompt": _text(
            reply.get("system_prompt"), key="system_prompt", limit=100_000, required=True
        ),
        "changes": _string_list(reply.get("changes"), key="changes", limit=20, item_limit=1000),
    }


async def _ask_model(*, job: AgentJob, messages: list[dict]) -> str:
    """One completion with the workspace's default chat model (accounted to the job's
    user)."""
    result = await chat_complete(
        workspace_id=job.workspace_id,
        model_id=None,
        messages=messages,
        usage=UsageContext(workspace_id=job.workspace_id, user_id=job.created_by_id),
    )
    return result.text


async def _heartbeat(job_id: uuid.UUID, worker_id: str) -> None:
    """Keep a running job alive for the stale sweep while its model call is awaited."""
    beat = sync_to_async(job_heartbeat)
    while True:
        await asyncio.sleep(JOB_HEARTBEAT_SECONDS)
        if not await beat(AgentJob, job_id, worker_id=worker_id):
            return  # cancelled or swept: its result will be discarded


def agent_job_run(*, job_id: uuid.UUID | str) -> AgentJob | None:
    """Execute a queued job to its terminal state (what the Celery task calls).
    Idempotent: a job that is not queued any more is left alone (returns None). Provider
    errors, a reply that is not the asked JSON, and the time limit end it `failed` with a
    readable reason; a job cancelled meanwhile keeps `cancelled`."""
    job = agent_job_claim(job_id=job_id)
    if job is None:
        return None
    tools: list[Tool] = []
    if job.kind == AgentJobKind.GENERATE_AGENT:
        tools = list(
            Tool.objects.filter(
                workspace_id=job.workspace_id, pk__in=job.input.get("tool_ids") or []
            )
        )
        messages = generate_agent_messages(job_input=job.input, tools=tools)
    else:
        messages = optimize_prompt_messages(job_input=job.input)

    async def ask() -> str:
        beat = asyncio.create_task(_heartbeat(job.pk, job.worker_id))
        try:
            return await asyncio.wait_for(
                _ask_model(job=job, messages=messages), timeout=JOB_TIMEOUT_SECONDS
            )
        finally:
            beat.cancel()

    try:
        text = async_to_sync(ask)()
        if job.kind == AgentJobKind.GENERATE_AGENT:
            result = generate_agent_result(text=text, tools=tools)
        else:
            result = optimize_prompt_result(text=text)
    except ProviderError as exc:
        agent_job_finish(
            job_id=job.pk,
            status=AgentJobStatus.FAILED,
            error_code=exc.code,
            error_message=exc.message,
        )
    except TimeoutError:
        agent_job_finish(
            job_id=job.pk,
            status=AgentJobStatus.FAILED,
            error_code="job_timeout",
            error_message=f"The model did not answer within {JOB_TIMEOUT_SECONDS} seconds.",
        )
    except InvalidModelOutput as exc:
        agent_job_finish(
            job_id=job.pk,
            status=AgentJobStatus.FAILED,
            error_code="invalid_model_output",
            error_message=str(exc),
        )
    else:
        agent_job_finish(job_id=job.pk, status=AgentJobStatus.SUCCEEDED, result=result)
    job.refresh_from_db()
    return job


# --- what a message gives the agent (files: attachments, images) --------------------------


def agent_accepts_images(*, agent: Agent) -> bool:
    """Whether the agent's model (else the workspace's default chat model) has the
    vision capability (set by the capability probe or the operator). True when no model
    resolves: the run then fails with its own clear error."""
    try:
        info = model_info(workspace_id=agent.workspace_id, model_id=agent.model_id, kind="chat")
    except ProviderError:
        return True
    return Capability.VISION in info.capabilities


def message_inputs_prepare(
    *,
    actor: Actor,
    agent: Agent,
    conversation_id: uuid.UUID,
    content: Any,
    attachments: Sequence[Any],
) -> list[dict[str, Any]]:
    """Check what a user message gives `agent`: image parts in `content` and attached
    files (apps.files). Returns the attachments the message stores. Raises
    ModelWithoutVision (400) for an image the model cannot see, ValidationFailed for a
    bad attachment."""
    has_image_part = isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "image_url" for part in content
    )
    if not has_image_part and not attachments:
        return []
    accepts_images = agent_accepts_images(agent=agent)
    if has_image_part and not accepts_images:
        raise ModelWithoutVision(
            "The message has an image and the agent's model does not accept images "
            "(no vision capability).",
            field="content",
        )
    return attachments_prepare(
        actor=actor,
        attachments=list(attachments),
        accepts_images=accepts_images,
        conversation_id=conversation_id,
    )


# --- code interpreter (docs/sandbox.md) -------------------------------------------------

CODE_POLICY_LIMITS: dict[str, tuple[int, int]] = {
    "cpu_seconds": (1, 300),
    "wall_seconds": (1, 600),
    "memory_mb": (64, 8192),
    "output_bytes": (1024, 1024 * 1024),
    "max_processes": (1, 512),
}
MAX_CODE_CHARS = 100_000


def code_interpreter_policy_update(
    *, actor: Actor, fields: dict[str, Any], ip: str | None = None
) -> CodeInterpreterPolicy:
    """Change the actor's workspace policy (admin). Each change is in the audit trail."""
    actor.require_role(Role.ADMIN)
    for name, (low, high) in CODE_POLICY_LIMITS.items():
        value = fields.get(name)
        if value is not None and not low <= int(value) <= high:
            raise ValidationFailed(f"{name} must be between {low} and {high}.", field=name)
    with transaction.atomic():
        policy, _ = CodeInterpreterPolicy.objects.select_for_update().get_or_create(
            workspace_id=actor.workspace_id
        )
        changed = {}
        for name, value in fields.items():
            if value is not None and getattr(policy, name) != value:
                setattr(policy, name, value)
                changed[name] = value
        if changed:
            policy.updated_by = actor.user
            policy.save()
            audit_record(
                action="code_interpreter.policy",
                actor_user=actor.user,
                workspace_id=actor.workspace_id,
                target_type="workspace",
                target_id=str(actor.workspace_id),
                metadata=changed,
                ip=ip,
            )
    return policy


def sandbox_limits(policy: CodeInterpreterPolicy) -> SandboxLimits:
    return SandboxLimits(
        cpu_seconds=policy.cpu_seconds,
        wall_seconds=policy.wall_seconds,
        memory_mb=policy.memory_mb,
        output_bytes=policy.output_bytes,
        max_processes=policy.max_processes,
        max_files=int(files_limit("FILES_AGENT_MAX_FILES")),
        max_file_bytes=int(files_limit("FILES_AGENT_MAX_FILE_BYTES")),
    )


def code_execution_create(
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
    run_id: uuid.UUID | None,
    conversation_id: uuid.UUID | None,
    code: str = "",
    skill_version_id: uuid.UUID | None = None,
    script: str = "",
    args: list[str] | None = None,
) -> CodeExecution:
    return CodeExecution.objects.create(
        args=list(args or []),
        workspace_id=workspace_id,
        user_id=user_id,
        agent_id=agent_id,
        run_id=run_id,
        conversation_id=conversation_id,
        kind="skill_script" if script else "code",
        code=code,
        skill_version_id=skill_version_id,
        script=script,
    )


@dataclass
class SandboxInput:
    code: str
    files: dict[str, bytes]
    limits: SandboxLimits
    skill_files: dict[str, bytes] | None
    script: str
    args: list[str]


def code_execution_prepare(
    *, execution_id: uuid.UUID
) -> tuple[CodeExecution, SandboxInput | None, str]:
    """Claim a queued execution and gather its inputs (the conversation's workspace files,
    the skill's files). Returns (execution, input, "") or (execution, None, reason): the
    reason is "" when another worker already claimed it."""
    claimed = CodeExecution.objects.filter(id=execution_id, status="queued").update(
        status="running", updated_at=timezone.now()
    )
    execution = CodeExecution.objects.get(id=execution_id)
    if not claimed:
        return execution, None, ""
    policy = code_interpreter_policy(workspace_id=execution.workspace_id)
    if not policy.enabled:
        return execution, None, "The code interpreter is off in this workspace."
    workspace: dict[str, bytes] = {}
    if execution.conversation_id is not None:
        for file in workspace_files(conversation_id=execution.conversation_id):
            workspace[file.path] = file_read_bytes(file=file)
    skill_files = None
    if execution.skill_version_id is not None:
        version = SkillVersion.objects.get(id=execution.skill_version_id)
        skill_files = {f.path: bytes(f.content) for f in version.files.all()}
        skill_files["SKILL.md"] = version.skill_md.encode("utf-8")
    return (
        execution,
        SandboxInput(
            code=execution.code,
            files=workspace,
            limits=sandbox_limits(policy),
            skill_files=skill_files,
            script=execution.script,
            args=list(execution.args),
        ),
        "",
    )


def sandbox_run(job: SandboxInput) -> dict[str, Any]:
    """Run the prepared input in the sandbox (blocking, no database): the raw outcome
    with the files' bytes, for code_execution_finish."""
    try:
        result = run_python(
            job.code,
            files=job.files,
            limits=job.limits,
            skill_files=job.skill_files,
            script=job.script,
            args=job.args,
            host_ids=HostIds(
                base=settings.SANDBOX_HOST_UID_BASE,
                count=settings.SANDBOX_HOST_UID_COUNT,
                lock_dir=settings.SANDBOX_UID_LOCK_DIR,
            ),
        )
    except SandboxUnavailable as exc:
        return {"status": "unavailable", "error": str(exc)}
    except Exception:
        logger.exception("The sandbox failed")
        return {"status": "failed", "error": "The sandbox failed unexpectedly."}
    return {
        "status": result.status,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "result": result.result,
        "error": result.error,
        "exit_code": result.exit_code,
        "duration_ms": result.duration_ms,
        "_files": result.files,
        "_images": result.images,
        "deleted": result.deleted,
    }


def code_execution_finish(*, execution: CodeExecution, raw: dict[str, Any]) -> CodeExecution:
    """Store the files the code created or changed back in the conversation's workspace
    (deleting the ones it deleted), record the outcome and the audit event."""
    produced: dict[str, bytes] = raw.pop("_files", {})
    images: list[str] = raw.pop("_images", [])
    stored: list[dict[str, Any]] = []
    store_errors: list[str] = []
    conversation_id = execution.conversation_id
    if conversation_id is not None and execution.user_id is not None:
        for path, data in produced.items():
            try:
                file = workspace_write_bytes(
                    workspace_id=execution.workspace_id,
                    owner_id=execution.user_id,
                    conversation_id=conversation_id,
                    path=path,
                    data=data,
                )
            except ApplicationError as exc:
                store_errors.append(f"{path}: {exc.message}")
                continue
            stored.append(
                {
                    "file_id": str(file.id),
                    "path": file.path,
                    "size": file.size,
                    "content_type": file.content_type,
                    "image": path in images,
                }
            )
        for path in raw.get("deleted", []):
            with contextlib.suppress(ApplicationError):
                workspace_delete(conversation_id=conversation_id, path=path)
    outcome = {**raw, "files": stored, "store_errors": store_errors}
    execution.outcome = outcome
    execution.status = "succeeded" if outcome.get("status") == "ok" else "failed"
    execution.finished_at = timezone.now()
    execution.save(update_fields=["outcome", "status", "finished_at", "updated_at"])
    user = User.objects.filter(id=execution.user_id).first() if execution.user_id else None
    audit_record(
        action="code_interpreter.execute" if execution.kind == "code" else "skill_script.run",
        actor_user=user,
        workspace_id=execution.workspace_id,
        target_type="code_execution",
        target_id=str(execution.id),
        metadata={
            "agent_id": str(execution.agent_id or ""),
            "run_id": str(execution.run_id or ""),
            "conversation_id": str(execution.conversation_id or ""),
            "status": outcome.get("status"),
            "duration_ms": outcome.get("duration_ms"),
            "script": execution.script,
            "code": execution.code[:2000],
            "files": [f["path"] for f in stored],
        },
    )
    return execution


def code_execution_run(*, execution_id: uuid.UUID) -> CodeExecution:
    """Run a queued execution to its end, blocking (the Celery task of the `sandbox`
    queue). Idempotent: an execution already claimed is returned as it is."""
    execution, job, reason = code_execution_prepare(execution_id=execution_id)
    if job is None:
        if not reason:
            return execution
        return code_execution_finish(
            execution=execution, raw={"status": "unavailable", "error": reason}
        )
    return code_execution_finish(execution=execution, raw=sandbox_run(job))


async def code_execution_arun(*, execution_id: uuid.UUID) -> dict[str, Any]:
    """Run an execution from the event loop and return its outcome. With
    SANDBOX_CELERY_QUEUE set it goes to the sandbox workers of that queue (the web
    process only waits on the row); otherwise the sandbox runs in a thread of this
    process, the database steps in the usual sync thread."""
    queue = getattr(settings, "SANDBOX_CELERY_QUEUE", "")
    if queue:
        return await _code_execution_remote(execution_id=execution_id, queue=queue)
    execution, job, reason = await sync_to_async(code_execution_prepare)(execution_id=execution_id)
    if job is None:
        raw = {"status": "unavailable", "error": reason or "Already running elsewhere."}
    else:
        raw = await asyncio.to_thread(sandbox_run, job)
    execution = await sync_to_async(code_execution_finish)(execution=execution, raw=raw)
    return dict(execution.outcome)


async def _code_execution_remote(*, execution_id: uuid.UUID, queue: str) -> dict[str, Any]:
    def send() -> None:
        current_app.send_task("agents.code_execute", args=[str(execution_id)], queue=queue)

    await sync_to_async(send)()
    policy_wall = await sync_to_async(_execution_wall_seconds)(execution_id=execution_id)
    deadline = asyncio.get_running_loop().time() + policy_wall + SANDBOX_QUEUE_GRACE_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        execution = await CodeExecution.objects.aget(id=execution_id)
        if execution.status in ("succeeded", "failed"):
            return dict(execution.outcome)
        await asyncio.sleep(0.25)
    outcome = {"status": "unavailable", "error": "No sandbox worker answered in time."}
    await CodeExecution.objects.filter(id=execution_id, status__in=["queued", "running"]).aupdate(
        status="failed", outcome=outcome, finished_at=timezone.now()
    )
    return outcome


SANDBOX_QUEUE_GRACE_SECONDS = 60


def _execution_wall_seconds(*, execution_id: uuid.UUID) -> int:
    execution = CodeExecution.objects.get(id=execution_id)
    return code_interpreter_policy(workspace_id=execution.workspace_id).wall_seconds
