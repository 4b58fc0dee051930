from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING_FOR_APPROVAL = "waiting_for_approval", "Waiting for approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


RUN_TERMINAL = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING_FOR_APPROVAL = "waiting_for_approval", "Waiting for approval"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


# A step in one of these is done: what follows it may be decided.
STEP_DONE = (StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED)


class RunSource(models.TextChoices):
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    TRIGGER = "trigger", "Inbound trigger"
    AGENT_TOOL = "agent_tool", "Agent tool"
    WORKFLOW = "workflow", "Sub-workflow"
    RERUN = "rerun", "Rerun"


class StepType(models.TextChoices):
    START = "start", "Start"
    AGENT = "agent", "Agent"
    MODEL_CALL = "model_call", "Model call"
    KNOWLEDGE_RETRIEVAL = "knowledge_retrieval", "Knowledge retrieval"
    TOOL_CALL = "tool_call", "Tool call"
    HTTP_REQUEST = "http_request", "HTTP request"
    CONDITION = "condition", "Condition"
    LOOP = "loop", "Loop"
    TEMPLATE = "template", "Template"
    APPROVAL = "approval", "Human approval"
    SUB_WORKFLOW = "sub_workflow", "Sub-workflow"
    END = "end", "End"
