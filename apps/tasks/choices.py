from django.db import models


class ScheduleKind(models.TextChoices):
    ONCE = "once", "Once, at a time"
    CRON = "cron", "Recurring, by cron expression"
    INTERVAL = "interval", "Recurring, every N seconds"


class ConversationMode(models.TextChoices):
    """Where each execution's run happens."""

    NEW = "new", "A new conversation per execution"
    OWN = "own", "The task's own conversation (the agent sees earlier executions)"


class OverlapPolicy(models.TextChoices):
    """What a due time does while the previous execution still runs."""

    SKIP = "skip", "Skip it (recorded as skipped)"
    QUEUE = "queue", "Queue it behind the running one"


class MissedPolicy(models.TextChoices):
    """What the scheduler does with due times it missed (downtime)."""

    RUN_ONCE = "run_once", "Run once for all the missed due times"
    SKIP = "skip", "Skip them (recorded as skipped) and wait for the next"


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExecutionTrigger(models.TextChoices):
    SCHEDULE = "schedule", "The schedule"
    MANUAL = "manual", "Run now"
    TRIGGER = "trigger", "An inbound trigger"


TERMINAL_EXECUTION_STATUSES = (
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.SKIPPED,
)

# Run error codes worth another attempt (the model or its network, not the request).
TRANSIENT_RUN_ERRORS = frozenset(
    {
        "provider_rate_limited",
        "provider_server_error",
        "provider_timeout",
        "provider_unreachable",
        "interrupted",
    }
)
