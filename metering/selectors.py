"""Reads of the metering ledger. The API, the pages, the commands and quota checks all
call these, so a figure is computed in one place.

Day and month boundaries are the portal's (``TIME_ZONE``); hours are UTC.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, Max, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Least, Trunc, TruncDay, TruncMonth
from django.utils import timezone

from core import calendar, roles
from core.calendar import month_bounds, portal_zone
from departments.models import Cluster, Department, GpuClass, MembershipRole, Quota
from departments.selectors import department_roles_for_user
from metering import quantities
from metering.models import Measure, MeteringRun, MetricSource, UsageRecord

ZERO = Decimal("0")
GRANULARITIES = ("hour", "day", "month")
_TRUNCATE_IN_PORTAL_ZONE = {"day": TruncDay, "month": TruncMonth}
UNALLOCATED = "Unallocated"
UNKNOWN_MODEL = "Unknown model"


def billing_sources() -> list[MetricSource]:
    """The sources whose GPU time bills: one per cluster (one in all for a fleet of one)."""
    return list(MetricSource.objects.filter(is_billing=True).select_related("cluster"))


def usage_department_ids_for_user(*, user) -> frozenset[int] | None:
    """Departments whose usage ``user`` may read: ``None`` (all, and *Unallocated*) for
    finance and IT, otherwise the departments the user manages. Members see their own
    jobs, not the department's usage."""
    if roles.sees_all_departments(user):
        return None
    return frozenset(
        pk
        for pk, role in department_roles_for_user(user=user).items()
        if role == MembershipRole.MANAGER
    )


def usage_for_user(*, user) -> QuerySet[UsageRecord]:
    records = UsageRecord.objects.all()
    ids = usage_department_ids_for_user(user=user)
    if ids is not None:
        records = records.filter(department__in=ids)
    return records


def usage_summary(
    *,
    records: QuerySet[UsageRecord],
    sources: list[MetricSource],
    start: dt.datetime,
    end: dt.datetime,
    granularity: str = "day",
    department: Department | None = None,
    gpu_class: GpuClass | None = None,
    cluster: Cluster | None = None,
) -> list[dict]:
    """The figures of ``sources`` (all GPU time, or one latency source) in ``[start, end)``
    per period, source, cluster, department and GPU class: GPU time summed
    (``gpu_seconds`` exact, ``quantity`` in GPU-hours), or for a latency source the worst
    hourly p95 of the period (``quantity``, in ms).

    Rows without a department are *Unallocated*, rows without a class *Unknown model*;
    both are returned, never dropped. Periods are the portal's days and months.
    """
    if not sources:
        return []
    records = records.filter(
        source__in=[source.pk for source in sources], hour_start__gte=start, hour_start__lt=end
    )
    if department is not None:
        records = records.filter(department=department)
    if gpu_class is not None:
        records = records.filter(gpu_class=gpu_class)
    if cluster is not None:
        records = records.filter(cluster=cluster)
    # Hours stay UTC hours: truncating them in the portal's zone would merge the two
    # 02:00s of an autumn clock change (and mislabel half-hour zones).
    period = (
        F("hour_start")
        if granularity == "hour"
        else _TRUNCATE_IN_PORTAL_ZONE[granularity]("hour_start", tzinfo=portal_zone())
    )
    gpu_time = all(source.measures_gpu_time for source in sources)
    if not gpu_time and len(sources) > 1:
        raise ValueError("Latency is read one source at a time.")
    aggregate = Sum if gpu_time else Max
    rows = (
        records.annotate(period=period)
        .values(
            "period",
            "source__name",
            "cluster__slug",
            "cluster__name",
            "department__slug",
            "department__name",
            "gpu_class__slug",
            "gpu_class__name",
        )
        .annotate(quantity=aggregate("quantity"))
        .order_by("period", "source__name", "cluster__name", "department__name", "gpu_class__name")
    )
    return [
        {
            "period_start": row["period"],
            "source": row["source__name"],
            "cluster": row["cluster__slug"],
            "cluster_name": row["cluster__name"] or "",
            "department": row["department__slug"],
            "department_name": row["department__name"] or UNALLOCATED,
            "gpu_class": row["gpu_class__slug"],
            "gpu_class_name": row["gpu_class__name"] or UNKNOWN_MODEL,
            # GPU time in GPU-hours (unrounded; shown to 0.01) beside its exact GPU-seconds.
            "quantity": quantities.gpu_hours(row["quantity"]) if gpu_time else row["quantity"],
            "gpu_seconds": row["quantity"] if gpu_time else None,
            "unit": Measure.GPU_HOURS if gpu_time else sources[0].measure,
        }
        for row in rows
    ]


def gpu_hours_used(
    *,
    department: Department,
    start: dt.datetime,
    end: dt.datetime,
    gpu_class: GpuClass | None = None,
) -> Decimal:
    """GPU-hours the billing source metered for ``department`` in ``[start, end)``."""
    records = billing_records(department=department, start=start, end=end, gpu_class=gpu_class)
    return quantities.gpu_hours(records.aggregate(total=Coalesce(Sum("quantity"), ZERO))["total"])


def billing_records(
    *,
    department: Department | int,
    start: dt.datetime,
    end: dt.datetime,
    gpu_class: GpuClass | int | None = None,
) -> QuerySet[UsageRecord]:
    """The billing source's records of ``department`` in ``[start, end)`` (of one GPU
    class if given), whose ``quantity`` :func:`gpu_hours_used` sums: admission sums them
    inside its own query, as a subquery."""
    # Joined rather than looked up first: admission reads this on every submission.
    records = UsageRecord.objects.filter(
        source__is_billing=True, department=department, hour_start__gte=start, hour_start__lt=end
    )
    if gpu_class is not None:
        records = records.filter(gpu_class=gpu_class)
    return records


def quota_metered_gpu_hours(*, quota: Quota, at: dt.datetime | None = None) -> Decimal:
    """Metered GPU-hours that count against a ``gpu_hours_month`` quota, month to date.

    Metering sees namespaces and GPU models, not job kinds: a quota narrowed to a job kind
    counts only the GPU-seconds of that kind's jobs (the jobs app adds those), so its
    metered part is zero.
    """
    if quota.kind != Quota.Kind.GPU_HOURS_MONTH:
        raise ValueError("Only gpu_hours_month quotas count metered GPU-hours.")
    if quota.job_kind:
        return ZERO
    start, end = month_bounds(at or timezone.now())
    return gpu_hours_used(
        department=quota.department, start=start, end=end, gpu_class=quota.gpu_class
    )


def daily_gpu_hours_by_class(
    *, department: Department, start: dt.datetime, end: dt.datetime
) -> list[dict]:
    """The billing sources' GPU-hours per portal day and GPU class, for the department
    page's chart."""
    return usage_summary(
        records=UsageRecord.objects.all(),
        sources=billing_sources(),
        start=start,
        end=end,
        granularity="day",
        department=department,
    )


@dataclass(frozen=True)
class BurnDown:
    month_start: dt.datetime
    days: list[dt.date]
    used_cumulative: list[Decimal]  # GPU-hours used by the end of each day so far
    budget: Decimal | None  # the department-wide gpu_hours_month quota, if any


# ``rows(start, end)``: a department's GPU-hours per portal day and GPU class, as
# usage_summary rows. The department page passes billing's (which adds the portal jobs run
# in worker pools to the ledger of its namespaces); by default the ledger's alone.
DailyRows = Callable[[dt.datetime, dt.datetime], list[dict]]


def budget_burn_down(
    *, department: Department, month: dt.datetime | dt.date, rows: DailyRows | None = None
) -> BurnDown:
    """Cumulative GPU-hours through the month against the department's monthly budget."""
    start, end = month_bounds(month)
    if rows is None:

        def rows(start, end):
            return daily_gpu_hours_by_class(department=department, start=start, end=end)

    budget = (
        Quota.objects.filter(
            department=department,
            kind=Quota.Kind.GPU_HOURS_MONTH,
            job_kind="",
            gpu_class__isnull=True,
        )
        .values_list("limit", flat=True)
        .first()
    )
    daily: dict[dt.date, Decimal] = {}
    for row in rows(start, end):
        day = row["period_start"].astimezone(portal_zone()).date()
        daily[day] = daily.get(day, ZERO) + row["quantity"]
    zone = portal_zone()
    today = timezone.now().astimezone(zone).date()
    days, cumulative, total = [], [], ZERO
    day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    while day < last and day <= today:
        total += daily.get(day, ZERO)
        days.append(day)
        cumulative.append(total)
        day += dt.timedelta(days=1)
    return BurnDown(month_start=start, days=days, used_cumulative=cumulative, budget=budget)


def covered_intervals(
    *, source: MetricSource, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of ``[start, end)`` that a successful run of ``source`` pulled after they
    had ended (an hour pulled while still in progress is not covered yet)."""
    runs = MeteringRun.objects.filter(
        source=source,
        status=MeteringRun.Status.SUCCEEDED,
        window_start__lt=end,
        window_end__gt=start,
    ).values_list("window_start", "window_end", "started_at")
    return _covered(runs, start, end)


def _covered(runs, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    intervals = []
    for window_start, window_end, started_at in runs:
        covered_end = min(window_end, calendar.floor_hour(started_at))
        if covered_end > window_start:
            intervals.append((max(window_start, start), min(covered_end, end)))
    return calendar.merge(intervals)


def covered_until_by_source() -> dict[str, dt.datetime | None]:
    """For each enabled source, by name, the end of the latest hour a successful run
    covered (as :func:`covered_intervals` counts it: a window up to the start of the hour
    its run started in), ``None`` when none has covered an hour yet; one query, for the
    metering lag on ``/metrics``."""
    covered_end = Least("window_end", Trunc("started_at", "hour", tzinfo=dt.UTC))
    latest = (
        MeteringRun.objects.filter(source=OuterRef("pk"), status=MeteringRun.Status.SUCCEEDED)
        .annotate(covered_end=covered_end)
        .filter(covered_end__gt=F("window_start"))
        .order_by("-covered_end")
        .values("covered_end")[:1]
    )
    return dict(
        MetricSource.objects.filter(enabled=True)
        .annotate(covered_until=Subquery(latest))
        .order_by("name")
        .values_list("name", "covered_until")
    )


JOB_COUNTER = "portal_job_gpu_seconds_total"


def billing_source_counts_jobs() -> bool:
    """Whether the billing source reads the portal workers' own job counter (then its
    ledger holds the jobs' GPU-seconds under their departments)."""
    return billing_sources_counting_jobs().exists()


def billing_sources_counting_jobs() -> QuerySet[MetricSource]:
    """The billing sources that read the portal workers' own job counter (admission asks
    whether there is one inside its own query)."""
    return MetricSource.objects.filter(is_billing=True, query_template__contains=JOB_COUNTER)


def billing_covered_intervals(
    *, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """:func:`covered_intervals` of the billing source (none when there is none), in one
    query: admission asks on every submission."""
    runs = MeteringRun.objects.filter(
        source__is_billing=True,
        status=MeteringRun.Status.SUCCEEDED,
        window_start__lt=end,
        window_end__gt=start,
    ).values_list("window_start", "window_end", "started_at")
    return _covered(runs, start, end)


def gaps(
    *, source: MetricSource, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The whole hours in ``[start, end)`` that no successful run covered, merged."""
    start, end = calendar.floor_hour(start), calendar.floor_hour(end)
    if end <= start:
        return []
    return calendar.complement(covered_intervals(source=source, start=start, end=end), start, end)


@dataclass(frozen=True)
class SourceStatus:
    source: MetricSource
    first_hour: dt.datetime | None
    hours_covered: int
    gaps: list[tuple[dt.datetime, dt.datetime]]
    last_run: MeteringRun | None
    last_success: MeteringRun | None
    last_failure: MeteringRun | None

    @property
    def gap_hours(self) -> int:
        return sum(calendar.hour_count(start, end) for start, end in self.gaps)


def metering_status(*, now: dt.datetime | None = None) -> list[SourceStatus]:
    """Per source: the hours covered since its first successful run, the gaps in between
    and the latest runs (with the last error)."""
    now = now or timezone.now()
    statuses = []
    for source in MetricSource.objects.order_by("name"):
        runs = source.runs.order_by("-started_at")
        succeeded = runs.filter(status=MeteringRun.Status.SUCCEEDED)
        first = succeeded.order_by("window_start").values_list("window_start", flat=True).first()
        covered, found_gaps = 0, []
        if first is not None:
            end = calendar.floor_hour(now)
            intervals = covered_intervals(source=source, start=first, end=end)
            covered = sum(calendar.hour_count(s, e) for s, e in intervals)
            found_gaps = gaps(source=source, start=first, end=end)
        statuses.append(
            SourceStatus(
                source=source,
                first_hour=first,
                hours_covered=covered,
                gaps=found_gaps,
                last_run=runs.first(),
                last_success=succeeded.first(),
                last_failure=runs.filter(status=MeteringRun.Status.FAILED).first(),
            )
        )
    return statuses
