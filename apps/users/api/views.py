import uuid
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.core.api.ratelimit import client_address
from apps.users.actors import SESSION_CREDENTIAL, Credential, get_actor, request_user
from apps.users.api.serializers import (
    AdminUserCreateSerializer,
    AdminUserSerializer,
    AdminUserUpdateSerializer,
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    AuditEventSerializer,
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    MeSerializer,
    MfaResetSerializer,
    OAuthApplicationCreatedSerializer,
    OAuthApplicationCreateSerializer,
    OAuthApplicationSerializer,
    OAuthApplicationUpdateSerializer,
    OAuthAuthorizationSerializer,
    SignInProviderSerializer,
    WorkspaceSecuritySerializer,
    WorkspaceSerializer,
    WorkspaceWriteSerializer,
)
from apps.users.choices import Role
from apps.users.exceptions import OAuthApplicationNotFound
from apps.users.models import Membership, User
from apps.users.permissions import PlatformAdmin, SignedIn
from apps.users.selectors import (
    access_api_key,
    access_member,
    access_oauth_client,
    access_user,
    access_workspace,
    api_key_list,
    audit_event_list,
    member_list,
    oauth_authorizations,
    oauth_client_list,
    provider_list,
    user_email_verified,
    user_has_mfa,
    user_search,
    users_with_mfa,
    workspace_memberships,
    workspace_policy_requires_mfa,
    workspace_requires_admin_mfa,
)
from apps.users.services import (
    admin_user_create,
    admin_user_delete,
    admin_user_reset_mfa,
    admin_user_set_active,
    api_key_create,
    api_key_revoke,
    member_add,
    member_change_role,
    member_remove,
    oauth_application_create,
    oauth_application_delete,
    oauth_application_update,
    oauth_authorization_revoke,
    workspace_create,
    workspace_rename,
    workspace_security_update,
)

TAGS = ["workspaces"]


class WorkspaceListView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="workspaces_list", responses=WorkspaceSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request) -> Response:
        def serialize(page: list[Membership]) -> object:
            roles = {m.workspace_id: m.role for m in page}
            return WorkspaceSerializer(
                [m.workspace for m in page], many=True, context={"roles": roles}
            ).data

        return self.paginate(request, workspace_memberships(actor=get_actor(request)), serialize)

    @extend_schema(
        operation_id="workspaces_create",
        request=WorkspaceWriteSerializer,
        responses={201: WorkspaceSerializer},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        serializer = WorkspaceWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = workspace_create(
            user=request_user(request), name=serializer.validated_data["name"]
        )
        data = WorkspaceSerializer(workspace, context={"roles": {workspace.id: Role.OWNER}}).data
        return Response(data, status=201)


class WorkspaceDetailView(ApiView):
    scope_area = "workspaces"

    @extend_schema(operation_id="workspaces_get", responses=WorkspaceSerializer, tags=TAGS)
    def get(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        roles = {membership.workspace_id: membership.role}
        return Response(WorkspaceSerializer(membership.workspace, context={"roles": roles}).data)

    @extend_schema(
        operation_id="workspaces_update",
        request=WorkspaceWriteSerializer,
        responses=WorkspaceSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        serializer = WorkspaceWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace = workspace_rename(membership=membership, name=serializer.validated_data["name"])
        roles = {workspace.id: membership.role}
        return Response(WorkspaceSerializer(workspace, context={"roles": roles}).data)


class MemberListView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="workspace_members_list", responses=MemberSerializer(many=True), tags=TAGS
    )
    def get(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        return self.paginate(
            request,
            member_list(membership=membership),
            lambda page: MemberSerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="workspace_members_add",
        request=MemberAddSerializer,
        responses={201: MemberSerializer},
        tags=TAGS,
    )
    def post(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        serializer = MemberAddSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        added = member_add(
            membership=membership,
            email=serializer.validated_data["email"],
            role=Role(serializer.validated_data["role"]),
        )
        return Response(MemberSerializer(added).data, status=201)


class MemberDetailView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="workspace_members_update",
        request=MemberRoleSerializer,
        responses=MemberSerializer,
        tags=TAGS,
    )
    def patch(self, request: Request, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        target = access_member(membership=membership, user_id=user_id)
        serializer = MemberRoleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        updated = member_change_role(
            membership=membership, target=target, role=Role(serializer.validated_data["role"])
        )
        return Response(MemberSerializer(updated).data)

    @extend_schema(operation_id="workspace_members_remove", responses={204: None}, tags=TAGS)
    def delete(self, request: Request, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        target = access_member(membership=membership, user_id=user_id)
        member_remove(membership=membership, target=target)
        return Response(status=204)


# --- Identity -------------------------------------------------------------------------


def _ip(request: Request) -> str | None:
    return client_address(request._request) or None


class ApiKeyListView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="api_keys_list",
        responses=ApiKeySerializer(many=True),
        tags=["api-keys"],
        description="Keys of the current workspace: all for admins, your own otherwise.",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            api_key_list(actor=get_actor(request)),
            lambda page: ApiKeySerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="api_keys_create",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        tags=["api-keys"],
        description="Create a key in the current workspace. `key` is shown only here.",
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key, plaintext = api_key_create(
            actor=get_actor(request),
            name=serializer.validated_data["name"],
            scopes=serializer.validated_data["scopes"],
            expires_at=serializer.validated_data["expires_at"],
            ip=_ip(request),
        )
        data = ApiKeyCreatedSerializer(key, context={"plaintext": plaintext}).data
        return Response(data, status=201)


class ApiKeyDetailView(ApiView):
    scope_area = "workspaces"

    @extend_schema(operation_id="api_keys_get", responses=ApiKeySerializer, tags=["api-keys"])
    def get(self, request: Request, api_key_id: uuid.UUID) -> Response:
        key = access_api_key(actor=get_actor(request), api_key_id=api_key_id)
        return Response(ApiKeySerializer(key).data)

    @extend_schema(
        operation_id="api_keys_revoke",
        # 200 with the revoked key (a DELETE's default would be a bodiless 204).
        responses={200: ApiKeySerializer},
        tags=["api-keys"],
        description="Revoke the key (idempotent); it is refused from the next request on.",
    )
    def delete(self, request: Request, api_key_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        key = access_api_key(actor=actor, api_key_id=api_key_id)
        key = api_key_revoke(actor=actor, key=key, ip=_ip(request))
        return Response(ApiKeySerializer(key).data)


class AuditEventListView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[
            OpenApiParameter("action", str, description="Only actions starting with this."),
            OpenApiParameter(
                "user", str, description="Only events whose actor's email contains this."
            ),
        ],
        responses=AuditEventSerializer(many=True),
        tags=["audit"],
        description="The current workspace's audit trail, newest first. Needs admin.",
    )
    def get(self, request: Request) -> Response:
        events = audit_event_list(
            actor=get_actor(request),
            action=request.query_params.get("action", "")[:64],
            user_email=request.query_params.get("user", "")[:254],
        )
        return self.paginate(
            request, events, lambda page: AuditEventSerializer(page, many=True).data
        )


class WorkspaceSecurityView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="workspace_security_get",
        responses=WorkspaceSecuritySerializer,
        tags=TAGS,
    )
    def get(self, request: Request, workspace_id: uuid.UUID) -> Response:
        membership = access_workspace(actor=get_actor(request), workspace_id=workspace_id)
        required = workspace_requires_admin_mfa(workspace_id=membership.workspace_id)
        return Response({"require_admin_mfa": required})

    @extend_schema(
        operation_id="workspace_security_update",
        request=WorkspaceSecuritySerializer,
        responses=WorkspaceSecuritySerializer,
        tags=TAGS,
        description="Require MFA of the workspace's admins and owners. Needs admin, and MFA "
        "on your own account to turn it on.",
    )
    def patch(self, request: Request, workspace_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        access_workspace(actor=actor, workspace_id=workspace_id)
        serializer = WorkspaceSecuritySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = workspace_security_update(
            actor=actor,
            require_admin_mfa=serializer.validated_data["require_admin_mfa"],
            ip=_ip(request),
        )
        return Response({"require_admin_mfa": policy.require_admin_mfa})


class OAuthApplicationListView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="oauth_applications_list",
        responses=OAuthApplicationSerializer(many=True),
        tags=["oauth-applications"],
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            oauth_client_list(actor=get_actor(request)),
            lambda page: OAuthApplicationSerializer(page, many=True).data,
        )

    @extend_schema(
        operation_id="oauth_applications_create",
        request=OAuthApplicationCreateSerializer,
        responses={201: OAuthApplicationCreatedSerializer},
        tags=["oauth-applications"],
        description="Register a third-party app in the current workspace (admin). "
        "`client_secret` is shown only in this response.",
    )
    def post(self, request: Request) -> Response:
        serializer = OAuthApplicationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client, secret = oauth_application_create(
            actor=get_actor(request), ip=_ip(request), **serializer.validated_data
        )
        data = OAuthApplicationCreatedSerializer(client, context={"client_secret": secret}).data
        return Response(data, status=201)


class OAuthApplicationDetailView(ApiView):
    scope_area = "workspaces"

    @extend_schema(
        operation_id="oauth_applications_get",
        responses=OAuthApplicationSerializer,
        tags=["oauth-applications"],
    )
    def get(self, request: Request, application_id: uuid.UUID) -> Response:
        client = access_oauth_client(actor=get_actor(request), application_id=application_id)
        return Response(OAuthApplicationSerializer(client).data)

    @extend_schema(
        operation_id="oauth_applications_update",
        request=OAuthApplicationUpdateSerializer,
        responses=OAuthApplicationSerializer,
        tags=["oauth-applications"],
    )
    def patch(self, request: Request, application_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        client = access_oauth_client(actor=actor, application_id=application_id)
        serializer = OAuthApplicationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client = oauth_application_update(actor=actor, client=client, **serializer.validated_data)
        return Response(OAuthApplicationSerializer(client).data)

    @extend_schema(
        operation_id="oauth_applications_delete",
        responses={204: None},
        tags=["oauth-applications"],
        description="Delete the app and revoke every token it holds.",
    )
    def delete(self, request: Request, application_id: uuid.UUID) -> Response:
        actor = get_actor(request)
        client = access_oauth_client(actor=actor, application_id=application_id)
        oauth_application_delete(actor=actor, client=client, ip=_ip(request))
        return Response(status=204)


class MeView(ApiView):
    permission_classes = [SignedIn]

    @extend_schema(
        operation_id="me_get",
        responses=MeSerializer,
        tags=["me"],
        description="Who am I: the user, their workspaces and roles, whether the email is "
        "verified and MFA is on or pending, and the credential in use.",
    )
    def get(self, request: Request) -> Response:
        user = request_user(request)
        credential = request.auth if isinstance(request.auth, Credential) else SESSION_CREDENTIAL
        memberships = list(
            Membership.objects.select_related("workspace", "workspace__security")
            .filter(user=user)
            .order_by("-workspace__is_personal", "workspace__name")
        )
        if credential.workspace_id is not None:
            memberships = [m for m in memberships if m.workspace_id == credential.workspace_id]
        mfa_workspaces = {
            m.workspace_id
            for m in memberships
            if Role(m.role).at_least(Role.ADMIN) and workspace_policy_requires_mfa(m.workspace)
        }
        mfa_enabled = user_has_mfa(user=user)
        data = {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "is_staff": user.is_staff,
            "email_verified": user_email_verified(user=user),
            "mfa_enabled": mfa_enabled,
            "mfa_setup_required": bool(mfa_workspaces) and not mfa_enabled,
            "workspaces": [
                {
                    "id": m.workspace_id,
                    "name": m.workspace.name,
                    "is_personal": m.workspace.is_personal,
                    "role": m.role,
                    "mfa_required": m.workspace_id in mfa_workspaces,
                }
                for m in memberships
            ],
            "credential": {
                "kind": str(credential.kind),
                "workspace_id": credential.workspace_id,
                "scopes": sorted(credential.scopes) if credential.scopes is not None else None,
            },
        }
        return Response(MeSerializer(data).data)


class MeAuthorizationListView(ApiView):
    permission_classes = [SignedIn]

    @extend_schema(
        operation_id="me_authorizations_list",
        responses=OAuthAuthorizationSerializer(many=True),
        tags=["me"],
        description="Third-party apps you authorized (their live access tokens).",
    )
    def get(self, request: Request) -> Response:
        return self.paginate(
            request,
            oauth_authorizations(user=request_user(request)),
            lambda page: OAuthAuthorizationSerializer(page, many=True).data,
            ordering=("-created",),
        )


class MeAuthorizationDetailView(ApiView):
    permission_classes = [SignedIn]

    @extend_schema(
        operation_id="me_authorizations_revoke",
        responses={204: None},
        tags=["me"],
        description="Revoke your consent to an application: all its tokens for you.",
    )
    def delete(self, request: Request, application_id: int) -> Response:
        revoked = oauth_authorization_revoke(
            user=request_user(request), application_id=application_id, ip=_ip(request)
        )
        if not revoked:
            raise OAuthApplicationNotFound()
        return Response(status=204)


class ProviderListView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_providers_list",
        responses=SignInProviderSerializer(many=True),
        tags=["auth"],
        auth=[],
        description="Upstream sign-in providers an operator configured (Django admin > "
        "Social applications), for login pages.",
    )
    def get(self, request: Request) -> Response:
        return Response(
            SignInProviderSerializer(provider_list(request=request._request), many=True).data
        )


class AdminUserListView(ApiView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        operation_id="admin_users_list",
        parameters=[
            OpenApiParameter("q", str, description="Search email and name."),
            OpenApiParameter("is_active", bool),
        ],
        responses=AdminUserSerializer(many=True),
        tags=["admin"],
    )
    def get(self, request: Request) -> Response:
        raw_active = request.query_params.get("is_active")
        is_active = None if raw_active is None else raw_active.lower() in ("1", "true", "yes")
        users = user_search(query=request.query_params.get("q", ""), is_active=is_active)

        def serialize(page: list[User]) -> object:
            with_mfa = users_with_mfa(user_ids=[u.id for u in page])
            return AdminUserSerializer(page, many=True, context={"mfa_user_ids": with_mfa}).data

        return self.paginate(request, users, serialize, ordering=("email",))

    @extend_schema(
        operation_id="admin_users_create",
        request=AdminUserCreateSerializer,
        responses={201: AdminUserSerializer},
        tags=["admin"],
    )
    def post(self, request: Request) -> Response:
        serializer = AdminUserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = admin_user_create(
            admin=request_user(request),
            email=data["email"],
            name=data["name"],
            password=data["password"] or None,
            is_staff=data["is_staff"],
        )
        return Response(AdminUserSerializer(created).data, status=201)


class AdminUserDetailView(ApiView):
    permission_classes = [PlatformAdmin]

    def _serialize(self, user: User) -> Any:
        with_mfa = users_with_mfa(user_ids=[user.id])
        return AdminUserSerializer(user, context={"mfa_user_ids": with_mfa}).data

    @extend_schema(operation_id="admin_users_get", responses=AdminUserSerializer, tags=["admin"])
    def get(self, request: Request, user_id: uuid.UUID) -> Response:
        return Response(self._serialize(access_user(user_id=user_id)))

    @extend_schema(
        operation_id="admin_users_update",
        request=AdminUserUpdateSerializer,
        responses=AdminUserSerializer,
        tags=["admin"],
        description="Disable (`is_active: false`) or re-enable a user.",
    )
    def patch(self, request: Request, user_id: uuid.UUID) -> Response:
        target = access_user(user_id=user_id)
        serializer = AdminUserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = admin_user_set_active(
            admin=request_user(request),
            user=target,
            is_active=serializer.validated_data["is_active"],
        )
        return Response(self._serialize(target))

    @extend_schema(
        operation_id="admin_users_delete",
        responses={204: None},
        tags=["admin"],
        description="Delete the user with their personal workspace and every workspace they "
        "are the only member of. 409 `last_owner` if they solely own a shared workspace.",
    )
    def delete(self, request: Request, user_id: uuid.UUID) -> Response:
        admin_user_delete(admin=request_user(request), user=access_user(user_id=user_id))
        return Response(status=204)


class AdminUserMfaResetView(ApiView):
    permission_classes = [PlatformAdmin]

    @extend_schema(
        operation_id="admin_users_mfa_reset",
        request=None,
        responses=MfaResetSerializer,
        tags=["admin"],
        description="Remove the user's MFA authenticators (TOTP, recovery codes).",
    )
    def post(self, request: Request, user_id: uuid.UUID) -> Response:
        removed = admin_user_reset_mfa(
            admin=request_user(request), user=access_user(user_id=user_id)
        )
        return Response({"removed": removed})
