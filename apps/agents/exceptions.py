from apps.core.exceptions import Conflict, NotFound


class AgentNotFound(NotFound):
    code = "agent_not_found"
    default_message = "Agent not found."


class AgentVersionNotFound(NotFound):
    code = "agent_version_not_found"
    default_message = "Agent version not found."


class AgentJobNotFound(NotFound):
    code = "agent_job_not_found"
    default_message = "Job not found."


class AgentSlugTaken(Conflict):
    code = "agent_slug_taken"
    default_message = "Another agent of this workspace already uses this slug."


class AgentArchived(Conflict):
    code = "agent_archived"
    default_message = "This agent is archived; unarchive it first."


class AgentNotArchived(Conflict):
    code = "agent_not_archived"
    default_message = "Only an archived agent can be purged; archive (delete) it first."


class AgentInUse(Conflict):
    code = "agent_in_use"
    default_message = "This agent is still referenced and cannot be purged."


class AgentJobFinished(Conflict):
    code = "agent_job_finished"
    default_message = "This job has already finished."
