"""What the identity provider's groups give, and what a person holds from where."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from accounts.models import (
    DEPARTMENT_ROLES,
    ApiToken,
    ProviderGrant,
    ProviderIdentity,
    RoleMapping,
)
from core import roles
from departments.models import MembershipRole

# Of two mappings naming the same department, the stronger role wins.
_STRENGTH = {MembershipRole.MEMBER: 1, MembershipRole.MANAGER: 2}


@dataclass(frozen=True)
class MappedRoles:
    """The roles a set of provider groups gives: Django groups by name and a role per
    department id."""

    groups: frozenset[str] = frozenset()
    departments: dict[int, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.groups or self.departments)


def roles_for_groups(*, groups: Iterable[str]) -> MappedRoles:
    """The roles the mappings give to someone in ``groups`` (exact, case-sensitive values,
    as the provider sends them)."""
    names = {g for g in groups if g}
    org_groups: set[str] = set()
    departments: dict[int, str] = {}
    mappings = RoleMapping.objects.filter(
        Q(department__isnull=True) | Q(department__active=True), group__in=names
    )
    for mapping in mappings:
        if mapping.role in (r.value for r in DEPARTMENT_ROLES):
            held = departments.get(mapping.department_id)
            if held is None or _STRENGTH[mapping.role] > _STRENGTH[held]:
                departments[mapping.department_id] = mapping.role
        else:
            org_groups.add(mapping.role)
    return MappedRoles(groups=frozenset(org_groups), departments=departments)


def role_mappings() -> QuerySet[RoleMapping]:
    return RoleMapping.objects.select_related("department")


def provider_identity_of(*, issuer: str, subject: str) -> ProviderIdentity | None:
    return (
        ProviderIdentity.objects.select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )


def provider_group_names(*, user) -> set[str]:
    """The Django groups the user holds because the identity provider gave them."""
    return set(ProviderGrant.objects.filter(user=user).values_list("group__name", flat=True))


def has_any_role(user) -> bool:
    """Whether the user may see anything at all: an organisation role, a membership,
    or staff or superuser status."""
    if not user.is_authenticated:
        return False
    if user.is_staff or roles.sees_all_departments(user):  # group names read once a request
        return True
    return user.memberships.exists()


def last_groups(*, user) -> list[str] | None:
    """The groups the provider sent at the user's last sign-in; None for a user the
    provider never signed in."""
    identity = ProviderIdentity.objects.filter(user=user).order_by("-last_seen_at").first()
    return None if identity is None else list(identity.groups)


def api_tokens_of(*, user) -> QuerySet[ApiToken]:
    """The personal API tokens ``user`` owns, newest first (none for someone not signed
    in): all that the page and the API show anyone, so nobody reaches another's token."""
    if not getattr(user, "is_authenticated", False):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")
