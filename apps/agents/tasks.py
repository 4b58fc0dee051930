import uuid

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from apps.agents.choices import AgentJobStatus
from apps.agents.services import (
    JOB_TIMEOUT_SECONDS,
    agent_job_finish,
    agent_job_run,
    code_execution_run,
)


@shared_task(
    name="agents.run_job",
    soft_time_limit=JOB_TIMEOUT_SECONDS + 30,
    time_limit=JOB_TIMEOUT_SECONDS + 60,
)
def run_agent_job(job_id: str) -> str | None:
    """Run one helper job to its terminal state (idempotent: a redelivery is a no-op)."""
    try:
        job = agent_job_run(job_id=job_id)
    except SoftTimeLimitExceeded:
        agent_job_finish(
            job_id=job_id,
            status=AgentJobStatus.FAILED,
            error_code="job_timeout",
            error_message="The job took longer than its time limit.",
        )
        return AgentJobStatus.FAILED
    return job.status if job is not None else None


@shared_task(name="agents.code_execute")
def code_execute(execution_id: str) -> str:
    """Run one sandboxed execution (routed to the `sandbox` queue in production)."""
    return code_execution_run(execution_id=uuid.UUID(execution_id)).status
