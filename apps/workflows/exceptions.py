from apps.core.exceptions import Conflict, NotFound, ValidationFailed


class WorkflowNotFound(NotFound):
    code = "workflow_not_found"
    default_message = "Workflow not found."


class WorkflowVersionNotFound(NotFound):
    code = "workflow_version_not_found"
    default_message = "Workflow version not found."


class WorkflowRunNotFound(NotFound):
    code = "workflow_run_not_found"
    default_message = "Workflow run not found."


class WorkflowToolNotFound(NotFound):
    code = "workflow_tool_not_found"
    default_message = "The workflow is not exposed as a tool."


class InvalidDefinition(ValidationFailed):
    code = "invalid_workflow"
    default_message = "The workflow definition is invalid."


class InvalidInputs(ValidationFailed):
    code = "invalid_inputs"
    default_message = "The run's inputs do not match the start step."


class NotPublished(Conflict):
    code = "workflow_not_published"
    default_message = "The workflow has no published version."


class RunNotCancellable(Conflict):
    code = "workflow_run_not_cancellable"
    default_message = "The run has already ended."


class RunNotWaiting(Conflict):
    code = "workflow_run_not_waiting"
    default_message = "The run is not waiting for an approval."


class RunNotFailed(Conflict):
    code = "workflow_run_not_failed"
    default_message = "Only a failed or cancelled run can be rerun."


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"
    default_message = "cursor is an integer >= -1."
