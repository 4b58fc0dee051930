from apps.core.exceptions import ApplicationError, Conflict, NotFound


class ConversationNotFound(NotFound):
    code = "conversation_not_found"
    default_message = "No such conversation."


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_message = "No such message."


class RunNotFound(NotFound):
    code = "run_not_found"
    default_message = "No such run."


class ShareNotFound(NotFound):
    code = "share_not_found"
    default_message = "No such share link."


class NothingToResume(NotFound):
    code = "no_recent_assistant_message"
    default_message = "This conversation has no run to resume."


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"
    status = 400
    default_message = "The cursor must be a non-negative integer or -1."


class RunActive(Conflict):
    code = "run_active"
    default_message = "A run is active in this conversation."


class RunNotCancellable(Conflict):
    code = "run_not_cancellable"
    default_message = "The run has already finished."


class RunNotAwaitingApproval(Conflict):
    code = "run_not_awaiting_approval"
    default_message = "The run is not waiting for an approval."


class RunNotQueued(Conflict):
    code = "run_not_queued"
    default_message = "The run is no longer queued."


class NothingToRerun(Conflict):
    code = "nothing_to_rerun"
    default_message = "The conversation has no user message to re-run from."


class InvalidStreamTicket(ApplicationError):
    code = "unauthorized"
    status = 401
    default_message = "The stream ticket is invalid, expired or already used."
