from apps.core.exceptions import ApplicationError, NotFound, PayloadTooLarge, ValidationFailed


class FileNotFound(NotFound):
    code = "file_not_found"
    default_message = "File not found."


class FileTooLarge(PayloadTooLarge):
    code = "file_too_large"
    default_message = "The file is larger than the limit."


class WorkspaceStorageFull(ApplicationError):
    code = "storage_quota_exceeded"
    status = 413
    default_message = "The workspace has no room left for this file."


class UnsupportedFile(ValidationFailed):
    code = "unsupported_file"
    default_message = "This type of file is not accepted."


class ModelWithoutVision(ApplicationError):
    code = "model_without_vision"
    status = 400
    default_message = "The agent's model does not accept images."


class AttachmentUnreadable(ApplicationError):
    """An attached document whose text could not be extracted (the run fails with it)."""

    code = "attachment_unreadable"
    status = 400
    default_message = "An attached file could not be read."


class WorkspacePathInvalid(ValidationFailed):
    code = "invalid_path"
    default_message = "The path is not valid."
