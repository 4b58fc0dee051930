from apps.core.exceptions import ApplicationError, Conflict, NotFound, Unauthorized


class TaskNotFound(NotFound):
    code = "task_not_found"
    default_message = "Task not found."


class ExecutionNotFound(NotFound):
    code = "task_execution_not_found"
    default_message = "Task execution not found."


class WebhookEndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    default_message = "Webhook endpoint not found."


class WebhookDeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    default_message = "Webhook delivery not found."


class TriggerNotFound(NotFound):
    code = "trigger_not_found"
    default_message = "Trigger not found."


class TaskArchived(Conflict):
    code = "task_archived"
    default_message = "The task is archived."


class TriggerUnauthorized(Unauthorized):
    code = "unauthorized"
    default_message = "The trigger's secret or signature is missing or invalid."


class TriggerDisabled(ApplicationError):
    code = "trigger_disabled"
    status = 409
    default_message = "The trigger is disabled."


class TriggerOwnerLostAccess(Conflict):
    code = "trigger_owner_lost_access"
    default_message = "The trigger's owner can no longer run it."


class TriggerNotStarted(Conflict):
    code = "trigger_not_started"
    default_message = "The trigger's task did not start a run."
