"""One job lifecycle for every kind of background work.

A *job* is a row that a worker (a Celery task, an asyncio task of an ASGI process) claims,
keeps alive and ends. Agent jobs, document ingestion and runs are jobs; scheduled
executions and webhook deliveries are built on the same primitive.

- `Job`: the abstract model a job model mixes in. Its fields:

  - `status`: the concrete model overrides it with its own choices and default, and
    declares which statuses mean "a worker holds the job" (`RUNNING_STATUSES`) and which
    are final (`TERMINAL_STATUSES`).
  - `error_code` / `error_message`: why the job is in its status: a stable lowercase code
    for programs and a sentence for people ("The worker running the job stopped before it
    finished; submit it again."). Not only errors: a cancelled or retried job says why too.
  - `attempts`: how many times a worker claimed it.
  - `worker_id`: which worker holds (or last held) it (`worker_identity()`: host:pid).
  - `heartbeat_at`: when its worker last said it was alive. For a queued job, when it was
    queued or the time before which it must not be picked up again (a retry's backoff).
  - `started_at`: the first claim; `finished_at`: when it reached a terminal status.

  The concrete model must also have `updated_at` (`core.models.BaseModel` gives it); the
  functions here set it on every write.

- `job_claim`: one conditional UPDATE from the allowed statuses to a running one; exactly
  one caller wins (a redelivered task, a second worker lose).
- `job_heartbeat`: the holder says it is alive (and may record progress); False once the
  job is no longer held (cancelled, swept, taken over): the worker should stop.
- `job_release`: the holder hands the job back to the queue (a retry later).
- `job_finish`: a terminal status with a readable reason; idempotent (the first finish
  wins, a later one returns False and changes nothing).
- `job_enqueue`: send a job's Celery task by its name after the transaction commits, so
  a service never imports its app's `tasks` module (which imports the services).
- The stale sweep: each app registers its job kinds (`job_kind_register`, from its
  `AppConfig.ready`) with how long a job may go without a heartbeat, and what a stale job
  becomes. One beat task (`core.sweep_stale_jobs`, every `JOBS_SWEEP_INTERVAL_SECONDS`,
  60 s by default) sweeps every registered kind (`jobs_sweep`). So a job whose worker was
  killed ends (or is retried) at most `stale_after` + the sweep interval after its last
  heartbeat.

Every function takes the model class and the job's primary key, so callers never hold a
stale in-memory copy, and every transition is a single conditional UPDATE: no locks, safe
on SQLite and PostgreSQL, safe across processes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from celery import current_app
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)

ERROR_MESSAGE_MAX_CHARS = 2000
# How many stale jobs of one kind a sweep handles; the next sweep takes the rest.
SWEEP_BATCH = 500


class Job(models.Model):
    """Abstract: the lifecycle fields of a job row (mixed into a concrete model)."""

    # Statuses in which a worker holds the job (it heartbeats; the sweep watches them).
    RUNNING_STATUSES: ClassVar[frozenset[str]] = frozenset()
    # Final statuses: `job_finish` moves a job into one of them, once.
    TERMINAL_STATUSES: ClassVar[frozenset[str]] = frozenset()

    status = models.CharField(max_length=20)
    error_code = models.CharField(
        max_length=64, blank=True, help_text="Why the job is in its status (stable code)."
    )
    error_message = models.TextField(
        blank=True, help_text="Why the job is in its status, in words a user can read."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker claimed the job."
    )
    worker_id = models.CharField(
        max_length=128, blank=True, help_text="The worker that holds (or last held) the job."
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="When the worker last said it was alive."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


J = TypeVar("J", bound=Job)

_hostname = socket.gethostname()


def worker_identity() -> str:
    """This process as a worker id (`host:pid`; computed per call, so forked Celery
    children each have their own)."""
    return f"{_hostname}:{os.getpid()}"


def _now_value(now: datetime) -> Value:
    return Value(now, output_field=models.DateTimeField())


def _jobs(model: type[J], job_id: Any, where: Q | None) -> models.QuerySet[J]:
    queryset = model._default_manager.filter(pk=job_id)
    return queryset.filter(where) if where is not None else queryset


def job_claim(
    model: type[J],
    job_id: Any,
    *,
    from_statuses: Iterable[str],
    status: str,
    worker_id: str | None = None,
    where: Q | None = None,
    **changes: Any,
) -> bool:
    """Claim a job: one conditional UPDATE from `from_statuses` to the running `status`.
    True for the one caller that won; False when the job is gone, in another status, or
    does not match `where` (a redelivered task, a cancelled job, an older generation).
    Counts an attempt, sets the worker, the heartbeat and (on the first claim)
    `started_at`; `changes` are written in the same UPDATE. Raises ValueError for a
    status that is not one of the model's RUNNING_STATUSES."""
    if status not in model.RUNNING_STATUSES:
        raise ValueError(f"{status!r} is not a running status of {model.__name__}.")
    now = timezone.now()
    claimed = (
        _jobs(model, job_id, where)
        .filter(status__in=list(from_statuses))
        .update(
            status=status,
            worker_id=worker_id or worker_identity(),
            attempts=F("attempts") + 1,
            heartbeat_at=now,
            started_at=Coalesce(F("started_at"), _now_value(now)),
            finished_at=None,
            updated_at=now,
            **changes,
        )
    )
    return bool(claimed)


def job_heartbeat(
    model: type[J],
    job_id: Any,
    *,
    worker_id: str | None = None,
    where: Q | None = None,
    **changes: Any,
) -> bool:
    """The holder of a running job says it is alive; `changes` (progress, a move to
    another running status) are written in the same UPDATE. False when the job is not
    running any more (cancelled, swept, finished), or, with `worker_id`, is held by
    another worker: the caller should stop working on it. Raises ValueError for a
    `status` change to a status that is not running."""
    if "status" in changes and changes["status"] not in model.RUNNING_STATUSES:
        raise ValueError(f"{changes['status']!r} is not a running status of {model.__name__}.")
    queryset = _jobs(model, job_id, where).filter(status__in=list(model.RUNNING_STATUSES))
    if worker_id is not None:
        queryset = queryset.filter(worker_id=worker_id)
    now = timezone.now()
    return bool(queryset.update(heartbeat_at=now, updated_at=now, **changes))


def job_release(
    model: type[J],
    job_id: Any,
    *,
    status: str,
    reason: str = "",
    code: str = "",
    not_before: datetime | None = None,
    from_statuses: Iterable[str] | None = None,
    where: Q | None = None,
    **changes: Any,
) -> bool:
    """Hand a job back to the queue in `status` (neither running nor terminal), with a
    readable reason (e.g. "Retrying in 20 s."). `not_before` is recorded as its
    heartbeat, so the stale sweep leaves it alone until then. Conditional on
    `from_statuses` (default: the running ones) and `where`; False when it did not
    apply. Raises ValueError for a running or terminal `status`."""
    if status in model.RUNNING_STATUSES or status in model.TERMINAL_STATUSES:
        raise ValueError(f"{status!r} is not a queued status of {model.__name__}.")
    statuses = model.RUNNING_STATUSES if from_statuses is None else frozenset(from_statuses)
    now = timezone.now()
    released = (
        _jobs(model, job_id, where)
        .filter(status__in=list(statuses))
        .update(
            status=status,
            error_code=code,
            error_message=reason[:ERROR_MESSAGE_MAX_CHARS],
            worker_id="",
            heartbeat_at=not_before or now,
            updated_at=now,
            **changes,
        )
    )
    return bool(released)


def job_finish(
    model: type[J],
    job_id: Any,
    *,
    status: str,
    reason: str = "",
    code: str = "",
    from_statuses: Iterable[str] | None = None,
    where: Q | None = None,
    **changes: Any,
) -> bool:
    """End a job in the terminal `status` with a readable `reason` (and a stable `code`),
    in one conditional UPDATE. Idempotent: only a job not yet terminal (and, when given,
    in `from_statuses` and matching `where`) changes; returns whether this call ended
    it, so a late result after a cancel or a sweep is discarded. `changes` (a result,
    counters) are written in the same UPDATE. Raises ValueError for a status that is not
    one of the model's TERMINAL_STATUSES."""
    if status not in model.TERMINAL_STATUSES:
        raise ValueError(f"{status!r} is not a terminal status of {model.__name__}.")
    queryset = _jobs(model, job_id, where).exclude(status__in=list(model.TERMINAL_STATUSES))
    if from_statuses is not None:
        queryset = queryset.filter(status__in=list(from_statuses))
    now = timezone.now()
    finished = queryset.update(
        status=status,
        error_code=code,
        error_message=reason[:ERROR_MESSAGE_MAX_CHARS],
        finished_at=now,
        updated_at=now,
        **changes,
    )
    return bool(finished)


_tasks_imported = False


def job_enqueue(
    task_name: str, *args: Any, countdown: float | None = None, after_commit: bool = True
) -> None:
    """Send the Celery task registered as `task_name` with `args` (ids, never objects),
    after the current transaction commits (`after_commit`, the default: a worker must
    find the rows it is given), or right away. By name, so that services need not
    import the `tasks` modules that import them. Honours `CELERY_TASK_ALWAYS_EAGER`
    (tests). Raises KeyError for a name no app registers."""
    global _tasks_imported
    if not _tasks_imported:
        # The apps' tasks modules are imported by the worker; a web process imports
        # them on first use so the task (and its options) are known here too.
        current_app.loader.import_default_modules()
        _tasks_imported = True
    task = current_app.tasks[task_name]

    def send() -> None:
        if countdown is None:
            task.apply_async(args=args)
        else:
            task.apply_async(args=args, countdown=countdown)

    if after_commit:
        transaction.on_commit(send)
    else:
        send()


# --- the stale sweep ----------------------------------------------------------------------

Duration = timedelta | Callable[[], timedelta]


def _duration(value: Duration) -> timedelta:
    return value() if callable(value) else value


@dataclass(frozen=True, slots=True)
class JobKind(Generic[J]):
    """A kind of job the stale sweep watches, and what a stale job of it becomes.

    - A *running* job (status in the model's RUNNING_STATUSES) without a heartbeat for
      `stale_after` lost its worker: it ends in `stale_status` with `stale_code` and
      `stale_reason`, unless `retry` takes it (see below).
    - With `queued_statuses` and `queued_after`, a job waiting in one of those statuses
      for longer than that (since its last heartbeat or update) lost its queue message:
      it ends in `stale_status` with `queued_code` and `queued_reason`, unless `retry`
      takes it.
    - `retry(job)`: give a stale job another attempt (e.g. `job_release` it and enqueue
      its task again, conditionally on `job.status` and `job.heartbeat_at`); return True
      when it did, False to let the sweep end it.
    - `on_ended(job)`: called after the sweep ended a job (e.g. to publish events); `job`
      is the row as it was before.
    Durations may be callables, read at each sweep (settings that change at run time);
    `stale_reason` may be a callable of the job.
    """

    name: str
    model: type[J]
    stale_after: Duration
    stale_status: str
    stale_reason: str | Callable[[J], str]
    stale_code: str = "worker_lost"
    queued_statuses: frozenset[str] = frozenset()
    queued_after: Duration | None = None
    queued_reason: str = ""
    queued_code: str = "queue_lost"
    retry: Callable[[J], bool] | None = None
    on_ended: Callable[[J], None] | None = None

    def __post_init__(self) -> None:
        if self.stale_status not in self.model.TERMINAL_STATUSES:
            raise ValueError(f"{self.stale_status!r} is not terminal for {self.model.__name__}.")


_registry: dict[str, JobKind[Any]] = {}


def job_kind_register(kind: JobKind[Any]) -> None:
    """Add a job kind to the stale sweep (idempotent: registering a name again replaces
    the earlier entry). Call it from the app's `AppConfig.ready`."""
    _registry[kind.name] = kind


def job_kinds() -> list[JobKind[Any]]:
    """The registered job kinds, in registration order."""
    return list(_registry.values())


def _sweep_one(kind: JobKind[J], job: J, *, code: str, reason: str | Callable[[J], str]) -> bool:
    if kind.retry is not None and kind.retry(job):
        return True
    if callable(reason):
        reason = reason(job)
    ended = job_finish(
        kind.model,
        job.pk,
        status=kind.stale_status,
        code=code,
        reason=reason,
        # Only the job as it was read: one that heartbeated meanwhile is alive.
        where=Q(status=job.status, heartbeat_at=job.heartbeat_at),
    )
    if ended and kind.on_ended is not None:
        kind.on_ended(job)
    return ended


def job_kind_sweep(kind: JobKind[J], *, now: datetime | None = None, where: Q | None = None) -> int:
    """Sweep one kind: end (or retry) its running jobs without a heartbeat for
    `stale_after` and, when configured, its queued jobs older than `queued_after`.
    `where` narrows the sweep (e.g. one conversation's runs). Returns how many jobs it
    ended or retried. Idempotent; safe to run from several processes at once."""
    now = now or timezone.now()
    manager = kind.model._default_manager
    alive_at = Coalesce("heartbeat_at", "updated_at")
    running = manager.annotate(_alive_at=alive_at).filter(
        status__in=list(kind.model.RUNNING_STATUSES),
        _alive_at__lt=now - _duration(kind.stale_after),
    )
    if where is not None:
        running = running.filter(where)
    count = 0
    for job in running.order_by("_alive_at")[:SWEEP_BATCH]:
        count += _sweep_one(kind, job, code=kind.stale_code, reason=kind.stale_reason)
    if kind.queued_statuses and kind.queued_after is not None:
        queued = manager.annotate(_alive_at=alive_at).filter(
            status__in=list(kind.queued_statuses),
            _alive_at__lt=now - _duration(kind.queued_after),
        )
        if where is not None:
            queued = queued.filter(where)
        for job in queued.order_by("_alive_at")[:SWEEP_BATCH]:
            count += _sweep_one(kind, job, code=kind.queued_code, reason=kind.queued_reason)
    if count:
        logger.info("stale job sweep: %s: %d job(s) ended or retried", kind.name, count)
    return count


def jobs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Sweep every registered kind (what the beat task runs). Returns the count per
    kind. A kind whose sweep raises is logged and does not stop the others; the first
    error is raised again once every kind was swept."""
    counts: dict[str, int] = {}
    failure: Exception | None = None
    for kind in job_kinds():
        try:
            counts[kind.name] = job_kind_sweep(kind, now=now)
        except Exception as exc:  # re-raised below, once the other kinds were swept
            logger.exception("stale job sweep failed for %s", kind.name)
            failure = failure or exc
    if failure is not None:
        raise failure
    return counts


def sweep_interval_seconds() -> int:
    """How often beat runs the sweep (`JOBS_SWEEP_INTERVAL_SECONDS`, default 60)."""
    return int(getattr(settings, "JOBS_SWEEP_INTERVAL_SECONDS", 60))
