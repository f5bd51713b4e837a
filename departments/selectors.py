"""Reads of departments and their rules, scoped to what a user may see.

Every page and API endpoint goes through these, so the rule "a user sees only the
departments they belong to, unless finance or it-admin" lives in one place.
"""

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from core import roles
from departments.models import (
    Department,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    ServiceLevel,
)


def department_roles_for_user(*, user) -> dict[int, str]:
    """The user's role (manager or member) in each department they belong to, by
    department id. Read once per user object (i.e. once per request)."""
    if not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, "_portal_department_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("department_id", "role"))
        user._portal_department_roles = cached
    return cached


def department_ids_for_user(*, user) -> frozenset[int] | None:
    """Ids of the departments ``user`` may see; ``None`` means every department."""
    if roles.sees_all_departments(user):
        return None
    return frozenset(department_roles_for_user(user=user))


def _scoped(queryset: QuerySet, *, user, path: str) -> QuerySet:
    ids = department_ids_for_user(user=user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{path}__in": ids})


def departments_for_user(*, user) -> QuerySet[Department]:
    return _scoped(Department.objects.select_related("parent"), user=user, path="pk")


def quotas_for_user(*, user) -> QuerySet[Quota]:
    return _scoped(
        Quota.objects.select_related("department", "gpu_class"), user=user, path="department"
    )


def service_levels_for_user(*, user) -> QuerySet[ServiceLevel]:
    return _scoped(
        ServiceLevel.objects.select_related("department").prefetch_related("gpu_classes"),
        user=user,
        path="department",
    )


def gpu_classes_for_user(*, user) -> QuerySet[GpuClass]:
    """GPU classes are the fleet's, not a department's: every signed-in user sees them."""
    return GpuClass.objects.all() if user.is_authenticated else GpuClass.objects.none()


def off_peak_windows_for_user(*, user) -> QuerySet[OffPeakWindow]:
    """The organisation's off-peak hours are public to every signed-in user."""
    return OffPeakWindow.objects.all() if user.is_authenticated else OffPeakWindow.objects.none()


def department_overviews_for_user(*, user) -> QuerySet[Department]:
    """Departments with everything their overview shows (namespaces, quotas, service
    levels with their GPU classes, the members), in a fixed number of queries."""
    return departments_for_user(user=user).prefetch_related(
        Prefetch(
            "namespaces", queryset=Namespace.objects.select_related("cluster").order_by("name")
        ),
        Prefetch("quotas", queryset=Quota.objects.select_related("gpu_class")),
        Prefetch(
            "service_levels",
            queryset=ServiceLevel.objects.prefetch_related("gpu_classes").order_by("-priority"),
        ),
        Prefetch(
            "memberships",
            queryset=Membership.objects.select_related("user").order_by("role", "user__username"),
        ),
        "children",
    )


def job_namespace(department: str = "pk") -> Subquery:
    """For a queryset of departments (or of rows whose ``department`` path names one): the
    namespace their portal jobs are counted under, the first of theirs by name (``None``
    for a department without one)."""
    return Subquery(
        Namespace.objects.filter(department=OuterRef(department))
        .order_by("name")
        .values("name")[:1]
    )


def manager_emails(department_id: int) -> list[str]:
    """The e-mail addresses of the department's managers who can be told something (active,
    with an address), sorted: who every alert and statement of the department goes to."""
    return sorted(
        Membership.objects.filter(
            department_id=department_id, role=Membership.Role.MANAGER, user__is_active=True
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
