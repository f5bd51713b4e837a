"""Reads of jobs and job kinds, scoped to what a user may see.

Finance and IT see every job; a department's managers see its jobs; a member sees the
jobs they submitted. Job kinds are the fleet's and visible to every signed-in user.

What counts against a quota (the read-only arithmetic admission decides with), a waiting
job's place in line and who may cancel a job are read here too.
"""

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Exists, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Sum

from core import calendar, roles
from core.calendar import floor_hour, portal_day_bounds
from departments.models import (
    Department,
    Membership,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from departments.selectors import department_ids_for_user, department_roles_for_user
from jobs.models import ACTIVE_STATES, GenerationJob, JobKind, JobState, ahead_of
from metering import quantities
from metering import selectors as metering_selectors


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


# --- Quota use ---------------------------------------------------------------------------------


SECONDS_PER_HOUR = Decimal(3600)


GPU_HOURS_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class QuotaCheck:
    """One quota against one job: its use before the job and what the job would add."""

    quota: Quota
    use: Decimal
    demand: Decimal

    @property
    def after(self) -> Decimal:
        return self.use + self.demand

    @property
    def exceeded(self) -> bool:
        return self.after > self.quota.limit

    @property
    def never_fits(self) -> bool:
        """The job alone needs more than the whole quota: waiting would never end."""
        return self.demand > self.quota.limit

    def describe(self) -> str:
        quota = self.quota
        scope = "" if not (quota.job_kind or quota.gpu_class) else f" ({quota.scope_display})"
        return (
            f"{quota.get_kind_display()}{scope}: limit {quota.limit_text}, "
            f"{fmt_quantity(self.use)} in use, this job needs {fmt_quantity(self.demand)}"
        )


def fmt_quantity(value: Decimal) -> str:
    value = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    return f"{value.normalize():f}"


def quota_period(quota: Quota, moment: dt.datetime) -> str:
    """The key of the period ``moment`` falls in, for alerts: the month for budgets, the
    day otherwise (quotas on what runs at once alert at most once a day)."""
    local = moment.astimezone(calendar.portal_zone())
    if quota.kind == QuotaKind.GPU_HOURS_MONTH:
        return local.strftime("%Y-%m")
    return local.strftime("%Y-%m-%d")


def _metered_until(at: dt.datetime, *, counts_jobs: bool | None = None) -> dt.datetime | None:
    """Up to when the metered figure already holds the month's finished jobs, or ``None``
    when it never does.

    Only a billing source that reads the workers' own counter
    (``portal_job_gpu_seconds_total``) sees portal jobs under their department: with
    ``allocation`` or ``device`` the shared GPU workers' pods count under the workers'
    namespace, so a finished job's GPU-seconds keep counting all month. With the counter,
    the month's first uninterrupted stretch of hours metering has covered holds the jobs
    that ended before it, less an hour (the counter rises when a job ends and is scraped a
    little later).
    """
    if counts_jobs is None:
        counts_jobs = metering_selectors.billing_source_counts_jobs()
    if not counts_jobs:
        return None
    start, _ = calendar.month_bounds(at)
    covered = metering_selectors.billing_covered_intervals(start=start, end=floor_hour(at))
    if not covered or covered[0][0] > start:
        return None
    return covered[0][1] - dt.timedelta(hours=1)


def quota_uses(quotas: list[Quota], *, at: dt.datetime) -> dict[int, Decimal]:
    """What counts against each of ``quotas`` (all of one department) at ``at``, before
    any new job, by quota id; one query over the department's jobs and the metered
    figures for GPU-hours budgets (a second and third only where the billing source
    counts the jobs themselves, see :func:`_metered_until`).

    - ``jobs_day``: jobs of its scope admitted on the portal day of ``at``;
    - ``concurrent_jobs``: jobs queued or running;
    - ``gpus``: GPUs of jobs queued or running;
    - ``gpu_hours_month``: the month's metered GPU-hours (the billing source; none for a
      quota narrowed to a job kind, which metering cannot see), plus the GPU-hours
      reserved by jobs queued or running, plus the GPU-seconds of the month's finished
      jobs that the metered figure does not hold yet.
    """
    if not quotas:
        return {}
    return _department_figures(quotas[0].department_id, quotas, at=at)[0]


def quota_uses_of_departments(quotas: list[Quota], *, at: dt.datetime) -> dict[int, Decimal]:
    """:func:`quota_uses` of quotas of any number of departments, by quota id, counted the
    same way in the same queries (one, or three where the billing source counts the jobs
    themselves) whatever the number of departments: for a scrape of the whole fleet."""
    if not quotas:
        return {}
    department_ids = sorted({quota.department_id for quota in quotas})
    figures = _departments_figures(department_ids, quotas, at=at)
    return {pk: use for uses, _ in figures.values() for pk, use in uses.items()}


# The department's jobs that any figure of :func:`_department_figures` counts.
_JOBS = "counted_jobs"


def _department_figures(
    department_id: int,
    quotas: list[Quota],
    *,
    at: dt.datetime,
    waiting: bool = False,
    extra: dict | None = None,
) -> tuple[dict[int, Decimal], dict]:
    """The uses of ``quotas`` (see :func:`quota_uses`) and the ``extra`` figures, in one
    query on the department's row: aggregates over its jobs that can count (open ones,
    today's admissions, this month's ends, and with ``waiting`` the waiting ones, as
    ``counted_jobs``), the metered GPU-hours as subqueries. Returns the uses by quota id
    and the row (the ``extra`` figures by name)."""
    figures = _departments_figures([department_id], quotas, at=at, waiting=waiting, extra=extra)
    if department_id not in figures:
        raise Department.DoesNotExist(f"No department with id {department_id}.")
    return figures[department_id]


def _departments_figures(
    department_ids: list[int],
    quotas: list[Quota],
    *,
    at: dt.datetime,
    waiting: bool = False,
    extra: dict | None = None,
) -> dict[int, tuple[dict[int, Decimal], dict]]:
    """:func:`_department_figures` of each of ``department_ids`` (``quotas`` may belong to
    any of them), by department id, in the same query: one row per department."""
    day_start, day_end = portal_day_bounds(at)
    month_start, month_end = calendar.month_bounds(at)
    metered = [q for q in quotas if q.kind == QuotaKind.GPU_HOURS_MONTH and not q.job_kind]
    figures: dict = dict(extra or {})
    if metered:
        figures["counts_jobs"] = Exists(metering_selectors.billing_sources_counting_jobs())
        for quota in metered:
            figures[f"q{quota.pk}_metered_s"] = Subquery(
                metering_selectors.billing_records(
                    department=quota.department_id,
                    start=month_start,
                    end=month_end,
                    gpu_class=quota.gpu_class_id,
                )
                .order_by()
                .values("department")
                .annotate(total=Sum("quantity"))
                .values("total")
            )

    def rows_from(unmetered_from: dt.datetime) -> dict[int, dict]:
        return _figures_rows(
            department_ids,
            quotas,
            figures,
            day=(day_start, day_end),
            month=(month_start, month_end),
            unmetered_from=unmetered_from,
            waiting=waiting,
        )

    rows = rows_from(month_start)
    if any(row.get("counts_jobs") for row in rows.values()):
        # The metered figure holds the jobs that ended before some hour: only the later
        # ones count on top of it.
        until = _metered_until(at, counts_jobs=True)
        # (Read again from there: only where the billing source is the workers' counter.)
        if until is not None and until > month_start:
            rows = rows_from(until)
    uses: dict[int, dict[int, Decimal]] = {pk: {} for pk in rows}
    for quota in quotas:
        row = rows.get(quota.department_id)
        if row is None:
            continue
        value = Decimal(row[f"q{quota.pk}"] or 0)
        if quota.kind == QuotaKind.GPU_HOURS_MONTH:
            finished = Decimal(row[f"q{quota.pk}_finished_s"] or 0) / SECONDS_PER_HOUR
            metered = quantities.gpu_hours(row.get(f"q{quota.pk}_metered_s"))
            value = (metered + value + finished).quantize(GPU_HOURS_PLACES)
        uses[quota.department_id][quota.pk] = value
    return {pk: (uses[pk], row) for pk, row in rows.items()}


def _figures_rows(
    department_ids: list[int],
    quotas: list[Quota],
    figures: dict,
    *,
    day: tuple[dt.datetime, dt.datetime],
    month: tuple[dt.datetime, dt.datetime],
    unmetered_from: dt.datetime,
    waiting: bool,
) -> dict:
    day_start, day_end = day
    month_start, month_end = month
    active = Q(**{f"{_JOBS}__state__in": ACTIVE_STATES})
    aggregates: dict = {}
    for quota in quotas:
        scope = Q()
        if quota.job_kind:
            scope &= Q(**{f"{_JOBS}__kind__slug": quota.job_kind})
        if quota.gpu_class_id is not None:
            scope &= Q(**{f"{_JOBS}__gpu_class_id": quota.gpu_class_id})
        key = f"q{quota.pk}"
        if quota.kind == QuotaKind.JOBS_DAY:
            admitted_today = Q(
                **{f"{_JOBS}__admitted_at__gte": day_start, f"{_JOBS}__admitted_at__lt": day_end}
            )
            aggregates[key] = Count(_JOBS, filter=scope & admitted_today)
        elif quota.kind == QuotaKind.CONCURRENT_JOBS:
            aggregates[key] = Count(_JOBS, filter=scope & active)
        elif quota.kind == QuotaKind.GPUS:
            aggregates[key] = Sum(f"{_JOBS}__gpus", filter=scope & active)
        else:
            since = unmetered_from if not quota.job_kind else month_start
            ended = Q(
                **{f"{_JOBS}__finished_at__gte": since, f"{_JOBS}__finished_at__lt": month_end}
            )
            aggregates[key] = Sum(f"{_JOBS}__gpu_hours_reserved", filter=scope & active)
            aggregates[f"{key}_finished_s"] = Sum(
                f"{_JOBS}__gpu_seconds", filter=scope & ~active & ended
            )
    # Only the rows any figure can count: open ones, today's admissions, this month's ends
    # (joined on these conditions, so a department with none still has its row).
    counted = (
        Q(jobs__state__in=ACTIVE_STATES)
        | Q(jobs__admitted_at__gte=min(day_start, month_start))
        | Q(jobs__finished_at__gte=month_start)
    )
    if waiting:
        counted |= Q(jobs__state=JobState.WAITING)
    names = [*aggregates, *figures]
    rows = (
        Department.objects.filter(pk__in=department_ids)
        .annotate(**{_JOBS: FilteredRelation("jobs", condition=counted)})
        .annotate(**aggregates, **figures)
        .values("pk", *names)
    )
    return {row.pop("pk"): row for row in rows}


def quota_use(quota: Quota, *, at: dt.datetime) -> Decimal:
    """What counts against ``quota`` at ``at`` (see :func:`quota_uses`)."""
    return quota_uses([quota], at=at)[quota.pk]


def job_demand(quota: Quota, job: GenerationJob) -> Decimal:
    if quota.kind in (QuotaKind.JOBS_DAY, QuotaKind.CONCURRENT_JOBS):
        return Decimal(1)
    if quota.kind == QuotaKind.GPUS:
        return Decimal(job.gpus)
    return reservation_gpu_hours(gpus=job.gpus, max_runtime_s=job.max_runtime_s)


def reservation_gpu_hours(*, gpus: int, max_runtime_s: int) -> Decimal:
    return (Decimal(gpus) * Decimal(max_runtime_s) / SECONDS_PER_HOUR).quantize(
        GPU_HOURS_PLACES, rounding=ROUND_HALF_UP
    )


def quota_applies(quota: Quota, *, kind_slug: str, gpu_class_id: int) -> bool:
    return (not quota.job_kind or quota.job_kind == kind_slug) and (
        quota.gpu_class_id is None or quota.gpu_class_id == gpu_class_id
    )


def applicable_quotas(job: GenerationJob, quotas: Iterable[Quota]) -> list[Quota]:
    return [
        q
        for q in quotas
        if quota_applies(q, kind_slug=job.kind.slug, gpu_class_id=job.gpu_class_id)
    ]


def quota_checks(
    job: GenerationJob, quotas: Iterable[Quota], *, at: dt.datetime
) -> list[QuotaCheck]:
    applicable = applicable_quotas(job, quotas)
    uses = quota_uses(applicable, at=at)
    return [QuotaCheck(quota=q, use=uses[q.pk], demand=job_demand(q, job)) for q in applicable]


@dataclass(frozen=True)
class AdmissionFigures:
    """What admission reads about a new job once its department is locked."""

    checks: list[QuotaCheck]  # the quotas that apply to the job, as quota_checks
    # The department's waiting jobs held by a quota that applies to the job (None: not
    # read): with none, no job waits ahead of it for one of its quotas.
    held: int | None
    # The department's waiting jobs ahead of the job, whatever holds them (None: not read).
    line_ahead: int | None
    key_taken: bool  # the idempotency key names an earlier job of the department


def admission_figures(
    job: GenerationJob,
    quotas: Iterable[Quota],
    *,
    at: dt.datetime,
    waiting_line: bool = True,
    idempotency_key: str = "",
) -> AdmissionFigures:
    """:func:`quota_checks` for ``job`` and, in the same query, with ``waiting_line`` the
    department's waiting jobs held by the quotas that apply to it and those ahead of it
    in line, and whether ``idempotency_key`` is taken. No query when nothing is asked: no
    quota applies, no key, and the job cannot wait for the off-peak hours."""
    applicable = applicable_quotas(job, quotas)
    waiting_line = waiting_line and (bool(applicable) or job.off_peak)
    if not (applicable or waiting_line or idempotency_key):
        return AdmissionFigures(checks=[], held=None, line_ahead=None, key_taken=False)
    extra: dict = {}
    if waiting_line:
        waiting = Q(**{f"{_JOBS}__state": JobState.WAITING})
        extra["line_ahead"] = Count(_JOBS, filter=waiting & ahead_of(job, path=_JOBS))
        extra["held"] = Count(
            _JOBS,
            filter=waiting
            & Q(**{f"{_JOBS}__blocking_quota_id__in": [quota.pk for quota in applicable]}),
        )
    if idempotency_key:
        extra["key_taken"] = Exists(
            GenerationJob.objects.filter(
                department_id=OuterRef("pk"), idempotency_key=idempotency_key
            )
        )
    uses, row = _department_figures(
        job.department_id, applicable, at=at, waiting=waiting_line, extra=extra
    )
    return AdmissionFigures(
        checks=[QuotaCheck(quota=q, use=uses[q.pk], demand=job_demand(q, job)) for q in applicable],
        held=row["held"] if waiting_line else None,
        line_ahead=row["line_ahead"] if waiting_line else None,
        key_taken=bool(row.get("key_taken")),
    )


# --- The waiting line and cancel rights ------------------------------------------------------


def waiting_position(job: GenerationJob) -> int | None:
    """1 for the department's next waiting job to be released, and so on."""
    if job.state != JobState.WAITING:
        return None
    return (
        GenerationJob.objects.filter(department_id=job.department_id, state=JobState.WAITING)
        .ahead_of(job)
        .count()
        + 1
    )


def user_can_cancel(*, user, job: GenerationJob) -> bool:
    if roles.is_it_admin(user):
        return True
    if job.submitter_id == user.pk:
        return True
    return Membership.objects.filter(
        user=user, department_id=job.department_id, role=Membership.Role.MANAGER
    ).exists()
