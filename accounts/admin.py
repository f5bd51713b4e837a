"""The admin of sign-in: IT maps the identity provider's groups to roles, sees who signed
in from where with which groups and which roles that gave, and revokes API tokens."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import tokens
from accounts.models import ApiToken, ProviderGrant, ProviderIdentity, RoleMapping
from core.admin_site import ReadOnlyModelAdmin
from departments.models import Membership


@admin.register(RoleMapping)
class RoleMappingAdmin(admin.ModelAdmin):
    list_display = ["group", "role", "department", "note", "created_at"]
    list_filter = ["role", "department"]
    search_fields = ["group", "department__name", "department__slug", "note"]
    autocomplete_fields = ["department"]


@admin.register(ProviderIdentity)
class ProviderIdentityAdmin(ReadOnlyModelAdmin):
    list_display = ["user", "subject", "issuer", "groups", "last_seen_at"]
    search_fields = ["user__username", "subject", "user__email"]
    list_filter = ["issuer"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "read_only",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_from",
        "revoked_at",
    ]
    list_filter = ["read_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = [f.name for f in ApiToken._meta.fields if f.name != "key_hash"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # A token is made by its owner, who alone sees its secret (Your API tokens).
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revoked, not deleted: its record of last use stays.
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            tokens.api_token_revoke(token=token, by=request.user)
            count += 1
        messages.success(request, f"Revoked {count} token{'s' if count != 1 else ''}.")


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    fields = ["department", "role", "origin"]
    readonly_fields = ["origin"]
    autocomplete_fields = ["department"]
    verbose_name_plural = "Departments (origin: set by hand, or from the identity provider)"


class ProviderGrantInline(admin.TabularInline):
    model = ProviderGrant
    extra = 0
    can_delete = False
    fields = ["group", "granted_at"]
    readonly_fields = fields
    verbose_name_plural = "Groups from the identity provider (the others above were set by hand)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ProviderIdentityInline(admin.TabularInline):
    model = ProviderIdentity
    extra = 0
    can_delete = False
    fields = ["issuer", "subject", "groups", "last_seen_at"]
    readonly_fields = fields
    verbose_name_plural = "Identity provider: who this is there, and the groups it sent last"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin, with where each role came from."""

    inlines = [MembershipOfUserInline, ProviderGrantInline, ProviderIdentityInline]
