import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView
from apps.users.actors import get_actor, request_user
from apps.users.api.serializers import (
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    WorkspaceSerializer,
    WorkspaceWriteSerializer,
)
from apps.users.choices import Role
from apps.users.models import Membership
from apps.users.selectors import access_member, access_workspace, member_list, workspace_memberships
from apps.users.services import (
    member_add,
    member_change_role,
    member_remove,
    workspace_create,
    workspace_rename,
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
