from apps.core.exceptions import Conflict, NotFound, PermissionDenied


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"
    default_message = "Workspace not found."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = "Member not found."


class LastOwner(Conflict):
    code = "last_owner"
    default_message = "A workspace must keep at least one owner."


class AlreadyMember(Conflict):
    code = "already_member"
    default_message = "This user is already a member of the workspace."


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_message = "API key not found."


class OAuthApplicationNotFound(NotFound):
    code = "oauth_application_not_found"
    default_message = "OAuth2 application not found."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class MfaRequired(PermissionDenied):
    code = "mfa_required"
    default_message = (
        "This workspace requires its admins to use two-factor authentication; enable it first."
    )


class CannotDeleteSelf(Conflict):
    code = "cannot_delete_self"
    default_message = "Platform admins cannot disable or delete their own account."


class ClientRegistrationError(Exception):
    """A refused RFC 7591 registration. `error` is the RFC's code (`invalid_redirect_uri`,
    `invalid_client_metadata`, or `temporarily_unavailable` when too many registrations
    wait for their first use); `field` names the metadata at fault. The registration
    endpoint answers it as `{"error", "error_description"}`, not as the API envelope."""

    def __init__(self, error: str, description: str, *, field: str = "", status: int = 400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.field = field
        self.status = status
