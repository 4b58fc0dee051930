from apps.core.exceptions import Conflict, NotFound


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
