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
