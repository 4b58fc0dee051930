import uuid
from typing import Any

from rest_framework import serializers

from apps.users.choices import Role
from apps.users.models import ApiKey, AuditEvent, Membership, OAuthClient, User, Workspace
from apps.users.scopes import API_SCOPES


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Workspace
        fields = ["id", "name", "is_personal", "role", "created_at", "updated_at"]

    def get_role(self, obj: Workspace) -> str:
        return str(self.context["roles"][obj.id])


class WorkspaceWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True)


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(source="user.id", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    name = serializers.CharField(source="user.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["user_id", "email", "name", "role", "created_at"]


class MemberAddSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- Identity -------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(read_only=True)
    workspace_id = serializers.UUIDField(read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "user_id",
            "workspace_id",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
            "created_at",
        ]

    def get_is_active(self, obj: ApiKey) -> bool:
        return obj.is_usable()


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The secret. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]

    def get_key(self, obj: ApiKey) -> str:
        return str(self.context["plaintext"])


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, trim_whitespace=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(API_SCOPES)),
        default=["read", "write"],
        min_length=1,
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class AuditEventSerializer(serializers.ModelSerializer):
    actor_user_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "action",
            "actor_user_id",
            "actor_email",
            "workspace_id",
            "target_type",
            "target_id",
            "metadata",
            "ip",
            "created_at",
        ]


class OAuthApplicationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workspace_id = serializers.UUIDField()
    name = serializers.CharField(source="application.name")
    client_id = serializers.CharField(source="application.client_id")
    client_type = serializers.CharField(source="application.client_type")
    grant_type = serializers.CharField(source="application.authorization_grant_type")
    redirect_uris = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_redirect_uris(self, obj: OAuthClient) -> list[str]:
        return obj.application.redirect_uris.split()


class OAuthApplicationCreatedSerializer(OAuthApplicationSerializer):
    client_secret = serializers.SerializerMethodField(
        help_text='The secret of a confidential client ("" for public). Shown only here.'
    )

    def get_client_secret(self, obj: OAuthClient) -> str:
        return str(self.context["client_secret"])


class OAuthApplicationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    client_type = serializers.ChoiceField(choices=["confidential", "public"])
    grant_type = serializers.ChoiceField(choices=["authorization-code", "client-credentials"])
    redirect_uris = serializers.ListField(
        child=serializers.CharField(max_length=500), default=list, max_length=20
    )


class OAuthApplicationUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False)
    redirect_uris = serializers.ListField(
        child=serializers.CharField(max_length=500), required=False, max_length=20
    )


class OAuthAuthorizationSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The access token's id.")
    application_id = serializers.IntegerField()
    application_name = serializers.CharField(source="application.name")
    client_id = serializers.CharField(source="application.client_id")
    workspace_id = serializers.SerializerMethodField()
    scopes = serializers.SerializerMethodField()
    expires = serializers.DateTimeField()
    created = serializers.DateTimeField()

    def get_workspace_id(self, obj: Any) -> uuid.UUID | None:
        binding = getattr(obj, "workspace_binding", None)
        return binding.workspace_id if binding else None

    def get_scopes(self, obj: Any) -> list[str]:
        return str(obj.scope).split()


class WorkspaceSecuritySerializer(serializers.Serializer):
    require_admin_mfa = serializers.BooleanField()


class MeWorkspaceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    is_personal = serializers.BooleanField()
    role = serializers.CharField()
    mfa_required = serializers.BooleanField(help_text="The workspace requires MFA of your role.")


class MeCredentialSerializer(serializers.Serializer):
    kind = serializers.CharField()
    workspace_id = serializers.UUIDField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), allow_null=True)


class MeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    is_staff = serializers.BooleanField()
    email_verified = serializers.BooleanField()
    mfa_enabled = serializers.BooleanField()
    mfa_setup_required = serializers.BooleanField(
        help_text="An admin role in a workspace that requires MFA, and no MFA yet."
    )
    workspaces = MeWorkspaceSerializer(many=True)
    credential = MeCredentialSerializer()


class AdminUserSerializer(serializers.ModelSerializer):
    mfa_enabled = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "name",
            "is_active",
            "is_staff",
            "date_joined",
            "last_login",
            "mfa_enabled",
        ]

    def get_mfa_enabled(self, obj: User) -> bool:
        return obj.id in self.context.get("mfa_user_ids", set())


class AdminUserCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    name = serializers.CharField(max_length=150, required=False, default="")
    password = serializers.CharField(
        required=False, allow_blank=True, default="", write_only=True, trim_whitespace=False
    )
    is_staff = serializers.BooleanField(default=False)


class AdminUserUpdateSerializer(serializers.Serializer):
    is_active = serializers.BooleanField()


class MfaResetSerializer(serializers.Serializer):
    removed = serializers.IntegerField()


class SignInProviderSerializer(serializers.Serializer):
    id = serializers.CharField(
        help_text="Provider id to use with /_allauth/…/auth/provider/redirect."
    )
    name = serializers.CharField()
    provider = serializers.CharField()
    client_id = serializers.CharField()
