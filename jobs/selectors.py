"""Reads of jobs and job kinds, scoped to what a user may see.

Finance and IT see every job; a department's managers see its jobs; a member sees the
jobs they submitted. Job kinds are the fleet's and visible to every signed-in user.
"""

from django.db.models import Q, QuerySet

from departments.models import Department, Membership, ServiceLevel, Tier
from departments.selectors import department_ids_for_user, department_roles_for_user
from jobs.models import GenerationJob, JobKind


def jobs_for_user(*, user) -> QuerySet[GenerationJob]:
    jobs = GenerationJob.objects.select_related(
        "department", "submitter", "kind", "gpu_class", "blocking_quota"
    )
    if not user.is_authenticated:
        return jobs.none()
    ids = department_ids_for_user(user=user)
    if ids is None:
        return jobs
    managed = [
        pk
        for pk, role in department_roles_for_user(user=user).items()
        if role == Membership.Role.MANAGER
    ]
    return jobs.filter(Q(department_id__in=managed) | Q(submitter=user, department_id__in=ids))


def job_kinds_for_user(*, user, active_only: bool = False) -> QuerySet[JobKind]:
    if not user.is_authenticated:
        return JobKind.objects.none()
    kinds = JobKind.objects.all()
    return kinds.filter(active=True) if active_only else kinds


def submit_departments_for_user(*, user):
    """Departments ``user`` may submit jobs for: those they are a manager or member of."""
    ids = list(department_roles_for_user(user=user))
    return Department.objects.filter(pk__in=ids, active=True).order_by("name")


# Between service levels of the same priority: the tier people mostly pick first.
_TIER_PREFERENCE = [Tier.INTERACTIVE, Tier.REALTIME, Tier.BATCH]


def default_tier(*, department: Department) -> str | None:
    """The tier a submission for ``department`` starts on: that of its service level
    with the highest priority, passing over batch work its SLA holds for the off-peak
    hours while it has another tier (work submitted by day should not wait for the
    night by default). ``None`` when it has no service level."""
    levels = ServiceLevel.objects.filter(department=department).values_list(
        "tier", "priority", "hold_for_off_peak"
    )
    ranked = sorted(
        levels,
        key=lambda level: (level[2], -level[1], _TIER_PREFERENCE.index(level[0])),
    )
    return ranked[0][0] if ranked else None
