"""Who signs in how: the identity provider's groups mapped to the portal's roles, what the
provider granted each person, and the personal API tokens people use in scripts.

Roles themselves stay where they always were: the ``finance`` and ``it-admin`` Django
groups and ``departments.Membership``. A membership the provider granted is marked
``origin=provider`` there; a Django group the provider granted has a :class:`ProviderGrant`
here. Whatever IT set by hand is never touched by a sign-in.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.roles import FINANCE, IT_ADMIN


class MappedRole(models.TextChoices):
    FINANCE = FINANCE, "Finance (reads everything, manages rate cards and statements)"
    IT_ADMIN = IT_ADMIN, "IT admin (manages departments, quotas, SLAs)"
    MANAGER = "manager", "Manager of a department"
    MEMBER = "member", "Member of a department"


DEPARTMENT_ROLES = (MappedRole.MANAGER, MappedRole.MEMBER)


class RoleMapping(models.Model):
    """One value of the provider's group claim and the role it gives: ``finance``,
    ``it-admin``, or manager or member of one department. Applied at every sign-in."""

    Role = MappedRole

    group = models.CharField(
        max_length=255,
        help_text="The value as the identity provider sends it in the group claim "
        "(a group name, or an ID for Entra ID).",
    )
    role = models.CharField(max_length=16, choices=MappedRole.choices)
    department = models.ForeignKey(
        "departments.Department",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="role_mappings",
        help_text="For managers and members: the department they join.",
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group", "role", "department__name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=MappedRole.values), name="role_mapping_role_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(role__in=[r.value for r in DEPARTMENT_ROLES], department__isnull=False)
                    | (
                        ~Q(role__in=[r.value for r in DEPARTMENT_ROLES])
                        & Q(department__isnull=True)
                    )
                ),
                name="role_mapping_department_iff_department_role",
                violation_error_message=(
                    "Managers and members need a department; finance and IT admin take none."
                ),
            ),
            models.UniqueConstraint(
                fields=["group", "role", "department"],
                name="one_role_mapping_per_group_role_department",
                violation_error_message="This group already gives this role.",
            ),
            models.UniqueConstraint(
                fields=["group", "role"],
                condition=Q(department__isnull=True),
                name="one_role_mapping_per_group_organisation_role",
                violation_error_message="This group already gives this role.",
            ),
        ]

    def __str__(self) -> str:
        if self.department_id:
            return f"{self.group} → {self.get_role_display_short()} of {self.department}"
        return f"{self.group} → {self.get_role_display_short()}"

    def get_role_display_short(self) -> str:
        return self.get_role_display().split(" (")[0]


class ProviderIdentity(models.Model):
    """The person behind a user at the identity provider (issuer and subject), with the
    groups it sent last, so IT sees why someone has the roles they have."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "provider identities"
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"], name="one_user_per_provider_subject"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.subject} at {self.issuer})"


class ProviderGrant(models.Model):
    """A Django group (``finance``, ``it-admin``) the identity provider gave a user. Only
    these are taken away again when the provider stops sending the group; a group IT gave
    by hand has no grant and stays."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_grants"
    )
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="+")
    granted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user__username", "group__name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "group"], name="one_grant_per_user_group")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.group} (from the identity provider)"


class TokenStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"


class ApiToken(models.Model):
    """A personal API token: its owner's access for scripts, until it expires or is
    revoked, read-only if its owner asked. Only a hash of the secret is kept; the secret
    is shown once, when the token is made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, to tell it apart.")
    # The first characters of the secret, to recognise it in a list or a log.
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(
        default=False, help_text="A read-only token reads; any write with it is refused."
    )
    # Not auto_now_add, which would overwrite the moment api_token_create counts the
    # lifetime from (a token of 30 days would live 30 days less a few microseconds).
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")),
                name="api_token_expires_after_creation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user}"

    @property
    def status(self) -> str:
        """Revoked (whatever its expiry), expired, or active: whether it is taken now."""
        if self.revoked_at is not None:
            return TokenStatus.REVOKED
        if self.expires_at <= timezone.now():
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE
