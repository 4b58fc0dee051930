"""The job lifecycle primitive (apps.core.jobs), exercised on a real job model (agent jobs):
conditional claim, heartbeat, release, idempotent finish, and the one stale sweep with a
driven clock."""

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import AgentJob
from apps.agents.services import AGENT_JOBS
from apps.core import jobs
from apps.core.jobs import (
    ERROR_MESSAGE_MAX_CHARS,
    JobKind,
    job_claim,
    job_finish,
    job_heartbeat,
    job_kind_register,
    job_kind_sweep,
    job_kinds,
    job_release,
    jobs_sweep,
    worker_identity,
)
from apps.core.tasks import sweep_stale_jobs
from tests.users.factories import UserFactory, make_workspace

pytestmark = pytest.mark.django_db

QUEUED, RUNNING, FAILED, SUCCEEDED = "queued", "running", "failed", "succeeded"


@pytest.fixture
def job():
    user = UserFactory()
    workspace = make_workspace(owner=user)
    return AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="optimize_prompt", input={"system_prompt": "x"}
    )


def _claim(job, **kwargs):
    return job_claim(AgentJob, job.pk, from_statuses=[QUEUED], status=RUNNING, **kwargs)


def _fresh(job):
    return AgentJob.objects.get(pk=job.pk)


def test_claim_is_won_once_and_records_the_attempt(job):
    before = timezone.now()
    assert _claim(job, worker_id="w1") is True
    assert _claim(job, worker_id="w2") is False  # a redelivered task, a second worker
    row = _fresh(job)
    assert (row.status, row.worker_id, row.attempts) == (RUNNING, "w1", 1)
    assert row.started_at >= before and row.heartbeat_at == row.started_at
    assert row.finished_at is None


def test_a_reclaim_counts_an_attempt_and_keeps_the_first_start(job):
    assert _claim(job)
    first_start = _fresh(job).started_at
    assert job_release(AgentJob, job.pk, status=QUEUED, reason="Retrying.")
    assert _claim(job)
    row = _fresh(job)
    assert (row.attempts, row.started_at, row.worker_id) == (2, first_start, worker_identity())


def test_claim_honours_where_and_refuses_a_status_that_is_not_running(job):
    assert _claim(job, where=Q(kind="generate_agent")) is False
    assert _fresh(job).status == QUEUED
    with pytest.raises(ValueError, match="'failed' is not a running status of AgentJob"):
        job_claim(AgentJob, job.pk, from_statuses=[QUEUED], status=FAILED)
    assert _fresh(job).status == QUEUED


def test_heartbeat_keeps_only_a_running_job_of_its_worker_alive(job):
    assert job_heartbeat(AgentJob, job.pk) is False  # still queued: nobody holds it
    assert _claim(job, worker_id="w1")
    AgentJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert job_heartbeat(AgentJob, job.pk, worker_id="w2") is False  # another worker
    assert _fresh(job).heartbeat_at < timezone.now() - timedelta(minutes=59)
    assert job_heartbeat(AgentJob, job.pk, worker_id="w1", input={"progress": 1}) is True
    row = _fresh(job)
    assert row.heartbeat_at > timezone.now() - timedelta(seconds=5)
    assert row.input == {"progress": 1}
    with pytest.raises(ValueError, match="'succeeded' is not a running status"):
        job_heartbeat(AgentJob, job.pk, status=SUCCEEDED)
    assert job_finish(AgentJob, job.pk, status=SUCCEEDED)
    assert job_heartbeat(AgentJob, job.pk, worker_id="w1") is False  # ended: stop working


def test_finish_is_terminal_and_idempotent(job):
    assert _claim(job)
    long_reason = "x" * (ERROR_MESSAGE_MAX_CHARS + 50)
    assert job_finish(AgentJob, job.pk, status=FAILED, code="boom", reason=long_reason) is True
    # A late result (the worker was swept, or the job cancelled) changes nothing.
    assert job_finish(AgentJob, job.pk, status=SUCCEEDED, result={"late": True}) is False
    row = _fresh(job)
    assert (row.status, row.error_code, row.result) == (FAILED, "boom", None)
    assert len(row.error_message) == ERROR_MESSAGE_MAX_CHARS
    assert row.finished_at is not None
    with pytest.raises(ValueError, match="'running' is not a terminal status"):
        job_finish(AgentJob, job.pk, status=RUNNING)


def test_finish_honours_from_statuses(job):
    assert job_finish(AgentJob, job.pk, status=SUCCEEDED, from_statuses=[RUNNING]) is False
    assert _fresh(job).status == QUEUED
    assert job_finish(AgentJob, job.pk, status="cancelled", reason="Cancelled by the user.")
    assert (_fresh(job).status, _fresh(job).error_message) == (
        "cancelled",
        "Cancelled by the user.",
    )


def test_release_refuses_running_and_terminal_statuses(job):
    assert _claim(job)
    for status in (RUNNING, FAILED):
        with pytest.raises(ValueError, match="is not a queued status"):
            job_release(AgentJob, job.pk, status=status)
    assert _fresh(job).status == RUNNING


def test_a_killed_workers_job_ends_failed_with_a_reason_within_the_sweep_bound(job):
    """The worker claims the job, heartbeats, then dies (no more heartbeats). The sweep
    leaves it alone until `stale_after` has passed since the last heartbeat, and ends it
    `failed` with a readable reason on the first sweep after that."""
    assert _claim(job, worker_id="doomed")
    assert job_heartbeat(AgentJob, job.pk, worker_id="doomed")
    last_beat = _fresh(job).heartbeat_at
    stale_after = AGENT_JOBS.stale_after
    assert isinstance(stale_after, timedelta)
    assert job_kind_sweep(AGENT_JOBS, now=last_beat + stale_after - timedelta(seconds=1)) == 0
    assert _fresh(job).status == RUNNING
    assert job_kind_sweep(AGENT_JOBS, now=last_beat + stale_after + timedelta(seconds=1)) == 1
    row = _fresh(job)
    assert (row.status, row.error_code) == (FAILED, "job_expired")
    assert row.error_message == (
        "The worker running the job stopped before it finished; submit it again."
    )
    assert row.finished_at is not None
    # The dead worker's late result, had it come back, is discarded; a second sweep is a no-op.
    assert job_finish(AgentJob, job.pk, status=SUCCEEDED, result={"x": 1}) is False
    assert job_kind_sweep(AGENT_JOBS, now=last_beat + stale_after * 10) == 0


def test_the_sweep_leaves_a_job_that_heartbeated_since_it_was_read(job, monkeypatch):
    assert _claim(job)
    AgentJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    seen = []

    def retry(stale):  # runs between the sweep's read and its conditional update
        seen.append(stale.pk)
        assert job_heartbeat(AgentJob, stale.pk)
        return False

    kind = JobKind(
        name="test.racing",
        model=AgentJob,
        stale_after=timedelta(minutes=1),
        stale_status=FAILED,
        stale_reason="Gone.",
        retry=retry,
    )
    assert job_kind_sweep(kind) == 0
    assert seen == [job.pk]
    assert _fresh(job).status == RUNNING


def test_retry_and_on_ended_hooks(job):
    user = job.created_by
    other = AgentJob.objects.create(workspace=job.workspace, created_by=user, kind="x")
    assert _claim(job) and _claim(other)
    old = timezone.now() - timedelta(hours=1)
    AgentJob.objects.filter(pk__in=[job.pk, other.pk]).update(heartbeat_at=old)
    ended = []

    def retry(stale):
        if stale.pk != job.pk:
            return False
        return job_release(
            AgentJob,
            stale.pk,
            status=QUEUED,
            reason="The worker stopped; retrying.",
            where=Q(heartbeat_at=stale.heartbeat_at),
        )

    kind = JobKind(
        name="test.hooks",
        model=AgentJob,
        stale_after=lambda: timedelta(minutes=5),
        stale_status=FAILED,
        stale_code="worker_lost",
        stale_reason="Gone.",
        retry=retry,
        on_ended=lambda stale: ended.append((stale.pk, stale.status)),
    )
    assert job_kind_sweep(kind) == 2
    retried, failed = _fresh(job), _fresh(other)
    assert (retried.status, retried.error_message, retried.worker_id) == (
        QUEUED,
        "The worker stopped; retrying.",
        "",
    )
    assert (failed.status, failed.error_code, failed.error_message) == (
        FAILED,
        "worker_lost",
        "Gone.",
    )
    assert ended == [(other.pk, RUNNING)]  # the row as it was before the sweep ended it


def test_a_queued_job_whose_message_was_lost_ends_with_its_own_reason(job):
    created = _fresh(job).updated_at
    assert job_kind_sweep(AGENT_JOBS, now=created + timedelta(minutes=59)) == 0
    assert job_kind_sweep(AGENT_JOBS, now=created + timedelta(minutes=61)) == 1
    row = _fresh(job)
    assert (row.status, row.error_code, row.error_message) == (
        FAILED,
        "job_expired",
        "No worker picked the job up in time; submit it again.",
    )


def test_a_released_job_is_not_swept_before_its_not_before(job):
    assert _claim(job)
    later = timezone.now() + timedelta(hours=3)
    assert job_release(AgentJob, job.pk, status=QUEUED, reason="Retrying later.", not_before=later)
    assert job_kind_sweep(AGENT_JOBS, now=later + timedelta(minutes=59)) == 0
    assert job_kind_sweep(AGENT_JOBS, now=later + timedelta(minutes=61)) == 1


def test_a_kind_must_end_stale_jobs_in_a_terminal_status():
    with pytest.raises(ValueError, match="'queued' is not terminal for AgentJob"):
        JobKind(
            name="bad",
            model=AgentJob,
            stale_after=timedelta(1),
            stale_status=QUEUED,
            stale_reason="",
        )


def test_the_beat_task_sweeps_every_registered_kind_even_when_one_fails(job, monkeypatch):
    assert "agents.job" in [kind.name for kind in job_kinds()]
    assert _claim(job)
    AgentJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert sweep_stale_jobs.delay().get() == {
        **{kind.name: 0 for kind in job_kinds()},
        "agents.job": 1,
    }
    assert _fresh(job).status == FAILED

    def broken(stale):
        raise RuntimeError("bug in a hook")

    second = AgentJob.objects.create(workspace=job.workspace, created_by=job.created_by, kind="x")
    assert _claim(second)
    AgentJob.objects.filter(pk=second.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    # Registered before the agents kind would not matter: every kind is swept, then the
    # first error is raised.
    bad = JobKind(
        name="aaa.broken",
        model=AgentJob,
        stale_after=timedelta(minutes=1),
        stale_status=FAILED,
        stale_reason="x",
        retry=broken,
    )
    monkeypatch.setattr(jobs, "_registry", {"aaa.broken": bad, **jobs._registry})
    with pytest.raises(RuntimeError, match="bug in a hook"):
        jobs_sweep()
    assert _fresh(second).status == FAILED  # the agents kind was still swept
    monkeypatch.undo()
    job_kind_register(AGENT_JOBS)  # idempotent
    assert [k.name for k in job_kinds()].count("agents.job") == 1
