from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import (
    ApiKey,
    AuditEvent,
    DynamicClientRegistration,
    Membership,
    OAuthClient,
    User,
    Workspace,
    WorkspaceSecurity,
)
from apps.users.services import api_key_create, audit_record, user_create


class MembershipInline(TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(User)
class UserAdmin(DjangoUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Profile"), {"fields": ("name",)}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change:
            super().save_model(request, obj, form, change)
            return
        # New users go through the service so they get their personal workspace.
        created = user_create(
            email=obj.email,
            is_staff=obj.is_staff,
            is_superuser=obj.is_superuser,
            is_active=obj.is_active,
        )
        created.password = obj.password
        created.save(update_fields=["password"])
        obj.pk = created.pk
        obj._state.adding = False


@admin.register(Workspace)
class WorkspaceAdmin(ModelAdmin):
    list_display = ["name", "is_personal", "created_by", "created_at"]
    list_filter = ["is_personal", "created_at"]
    search_fields = ["name", "created_by__email", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "workspace__name"]
    autocomplete_fields = ["user", "workspace"]


class ApiKeyAddForm(forms.ModelForm):
    """An operator creates a key for a member of a workspace (the key acts as them)."""

    class Meta:
        model = ApiKey
        fields = ["user", "workspace", "name", "expires_at"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        user, workspace = data.get("user"), data.get("workspace")
        if (
            user
            and workspace
            and not Membership.objects.filter(user=user, workspace=workspace).exists()
        ):
            raise forms.ValidationError(
                {"workspace": "The user is not a member of this workspace."}
            )
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    """Keys without their secrets (only a hash is stored); operators can revoke them, and
    add one: its secret is shown once, on the page after the form."""

    list_display = [
        "name",
        "prefix",
        "user",
        "workspace",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at", "created_at"]
    search_fields = ["name", "prefix", "user__email", "workspace__name"]
    readonly_fields = [
        "id",
        "prefix",
        "user",
        "workspace",
        "scopes",
        "last_used_at",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:5], "name", "expires_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    add_form = ApiKeyAddForm
    autocomplete_fields = ["user", "workspace"]

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = ApiKeyAddForm.Meta.fields
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields if obj is not None else ApiKeyAddForm.Meta.fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        membership = Membership.objects.get(user=obj.user, workspace=obj.workspace)
        key, secret = api_key_create(
            actor=Actor(user=obj.user, workspace=obj.workspace, role=Role(membership.role)),
            name=obj.name,
            expires_at=obj.expires_at,
            ip=request.META.get("REMOTE_ADDR"),
        )
        obj.pk, obj.prefix, obj.key_hash, obj.scopes = key.pk, key.prefix, key.key_hash, key.scopes
        obj._state.adding = False
        messages.warning(
            request, f"The new key, shown this once (only its hash is stored): {secret}"
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at", "updated_at"])
            audit_record(
                action="api_key.revoke",
                actor_user=request.user if isinstance(request.user, User) else None,
                workspace_id=key.workspace_id,
                target_type="api_key",
                target_id=str(key.id),
                metadata={"name": key.name, "prefix": key.prefix, "via": "admin"},
            )


@admin.register(AuditEvent)
class AuditEventAdmin(ModelAdmin):
    """The audit trail, read-only."""

    list_display = ["created_at", "action", "actor_email", "workspace_id", "target_type", "ip"]
    list_filter = ["action", "target_type", "created_at"]
    search_fields = ["action", "actor_email", "target_id", "workspace_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FirstUsedFilter(admin.SimpleListFilter):
    title = _("used")
    parameter_name = "used"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", str(_("Got a token"))), ("no", str(_("Never used")))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(first_used_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(first_used_at__isnull=True)
        return queryset


@admin.register(DynamicClientRegistration)
class DynamicClientRegistrationAdmin(admin.ModelAdmin):
    """Clients that registered themselves (RFC 7591): who asked, for what, whether used.
    Read-only; deleting one deletes its application and tokens."""

    list_display = [
        "created_at",
        "client_name",
        "client_id",
        "ip",
        "redirect_uris",
        "first_used_at",
    ]
    list_filter = [FirstUsedFilter, "created_at"]
    search_fields = ["client_name", "application__client_id", "ip", "software_id"]
    date_hierarchy = "created_at"
    list_select_related = ["application"]
    readonly_fields = [
        "application",
        "client_name",
        "redirect_uris",
        "scope",
        "software_id",
        "software_version",
        "ip",
        "user_agent",
        "first_used_at",
        "created_at",
    ]
    exclude = ["updated_at"]

    @admin.display(description=_("client ID"), ordering="application__client_id")
    def client_id(self, obj: DynamicClientRegistration) -> str:
        return obj.application.client_id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: DynamicClientRegistration) -> None:
        obj.application.delete()

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[DynamicClientRegistration]
    ) -> None:
        for registration in queryset.select_related("application"):
            registration.application.delete()


@admin.register(WorkspaceSecurity)
class WorkspaceSecurityAdmin(ModelAdmin):
    """Per-workspace security policy, e.g. MFA required for admins."""

    list_display = ["workspace", "require_admin_mfa", "updated_at"]
    list_filter = ["require_admin_mfa"]
    search_fields = ["workspace__name"]
    autocomplete_fields = ["workspace"]


@admin.register(OAuthClient)
class OAuthClientAdmin(ModelAdmin):
    """Which workspace an OAuth2 application belongs to (apps registered in the admin
    get one here to be usable with client credentials)."""

    list_display = ["application", "workspace", "created_at"]
    search_fields = ["application__name", "application__client_id", "workspace__name"]
    autocomplete_fields = ["workspace"]
    raw_id_fields = ["application"]
