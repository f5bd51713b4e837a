"""Reads of billing: statements scoped to the user, the month's chargeback report and the
cost trend. The dashboard, the department page, the API, the CSV/XLSX/PDF exports and the
benchmark all call these, so a figure is computed once.

The figures come from the month's statements, which :func:`billing.services.period_refresh`
keeps in step with the ledger (callers refresh first; it does nothing when nothing
changed), so a report reads a few hundred rows whatever the size of the ledger.
"""

import datetime as dt
import math
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Prefetch, QuerySet, Sum

from billing import pricing as engine
from billing.models import (
    USED_KINDS,
    Adjustment,
    BillingPeriod,
    LineKind,
    Statement,
    StatementLine,
    StatementLineJob,
    StatementStatus,
    WorkerPoolHour,
)
from core import roles
from core.calendar import Period, month_bounds, portal_zone
from departments.models import (
    Department,
    GpuClass,
    Quota,
    ServiceLevel,
    WorkerPool,
    namespace_label,
)
from jobs.models import GenerationJob, JobGpuTime
from metering.models import GPU_TIME_MEASURES, Measure, MetricSource, UsageRecord
from metering.quantities import gpu_hours, gpu_hours_shown
from metering.selectors import UNALLOCATED, UNKNOWN_MODEL, usage_department_ids_for_user

ZERO = Decimal(0)
NEW = "new"  # the change from nothing
UTILISATION_SOURCE = "utilisation"
LATENCY_SOURCE = "latency"


# --- Statements -----------------------------------------------------------------------------


def statements_for_user(*, user) -> QuerySet[Statement]:
    """Finance and IT read every statement; a manager those of the departments they
    manage; a member none (members see their own jobs, not the department's money).
    ``user`` None: the portal itself (mailing a statement), which reads every one."""
    statements = Statement.objects.select_related("period", "department", "finalized_by")
    ids = None if user is None else usage_department_ids_for_user(user=user)
    if ids is not None:
        statements = statements.filter(department__in=ids)
    return statements


def statement_with_lines(*, user, pk) -> Statement:
    """One statement the user may read, with its lines (and their cards and classes) and
    its adjustments; ``Statement.DoesNotExist`` otherwise."""
    return (
        statements_for_user(user=user)
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=StatementLine.objects.select_related(
                    "gpu_class", "cluster", "job_kind", "rate_card", "adjustment__original__period"
                ).order_by("position", "pk"),
            ),
            Prefetch(
                "adjustments_applied",
                queryset=Adjustment.objects.select_related("original__period", "created_by"),
            ),
        )
        .get(pk=pk)
    )


def line_jobs(*, user, statement_pk, line_pk) -> QuerySet[StatementLineJob]:
    """The portal jobs behind one line of a statement the user may read, with their GPU
    time on that line; ``StatementLine.DoesNotExist`` when the user may not read it."""
    line = StatementLine.objects.filter(
        pk=line_pk, statement__in=statements_for_user(user=user).filter(pk=statement_pk)
    ).first()
    if line is None:
        raise StatementLine.DoesNotExist(f"No line {line_pk} of statement {statement_pk}.")
    return (
        StatementLineJob.objects.filter(line=line)
        .select_related("job__kind", "job__submitter", "job__gpu_class")
        .order_by("job__submitted_at", "job_id")
    )


def period_lines(*, period: BillingPeriod, kind: str) -> QuerySet[StatementLine]:
    """The lines of a month that no department pays (*Unallocated* usage, absorbed idle)."""
    if period.pk is None:  # a month nothing opened (services.period_for_reading)
        return StatementLine.objects.none()
    return StatementLine.objects.filter(period=period, kind=kind, statement__isnull=True)


# --- The chargeback report ------------------------------------------------------------------


@dataclass
class SlaFigure:
    """How a department kept one promise in the month: the measured figure, the target,
    and whether it was met. ``measured`` None: nothing to measure."""

    tier: str
    measured: float | None
    target: float | None
    unit: str

    @property
    def met(self) -> bool | None:
        if self.measured is None or self.target is None:
            return None
        return self.measured <= self.target


@dataclass
class ReportRow:
    department: Department | None  # None: Unallocated
    name: str
    statement: Statement | None
    spend: Decimal
    gpu_seconds: Decimal
    by_class: dict[str, Decimal] = field(default_factory=dict)  # amount per GPU class name
    # Usage amount per cluster slug ("" for a source of no named cluster).
    by_cluster: dict[str, Decimal] = field(default_factory=dict)
    budget_gpu_hours: Decimal | None = None
    efficiency: Decimal | None = None  # busy GPU-seconds / billed GPU-seconds
    queue_wait: list[SlaFigure] = field(default_factory=list)  # p95 s per tier
    latency: list[SlaFigure] = field(default_factory=list)  # p95 ms per tier target
    # Every statement of the span (``statement``: the one, when there is exactly one).
    statements: list[Statement] = field(default_factory=list)
    previous_spend: Decimal | None = None  # None: no comparison asked for

    @property
    def status(self) -> str | None:
        """draft while any of its statements is, finalized once all are."""
        if not self.statements:
            return None
        finalized = all(s.is_finalized for s in self.statements)
        return StatementStatus.FINALIZED if finalized else StatementStatus.DRAFT

    @property
    def change(self) -> Decimal | None:
        return None if self.previous_spend is None else self.spend - self.previous_spend

    @property
    def change_pct(self) -> Decimal | str | None:
        return change_percent(self.spend, self.previous_spend)

    @property
    def gpu_hours(self) -> Decimal:
        """Its GPU-hours, as pages and exports show them (to 0.01)."""
        return gpu_hours_shown(self.gpu_seconds)

    @property
    def budget_used(self) -> Decimal | None:
        if not self.budget_gpu_hours:
            return None
        return (gpu_hours(self.gpu_seconds) / self.budget_gpu_hours).quantize(Decimal("0.0001"))

    @property
    def sla_met(self) -> bool | None:
        """False when a promise (a figure with a target) was measured and broken; True
        only when every promise was measured and kept; None (no data) otherwise: a month
        with nothing to measure for some promise is not a month that kept it."""
        verdicts = [f.met for f in [*self.queue_wait, *self.latency] if f.target is not None]
        if False in verdicts:
            return False
        if not verdicts or None in verdicts:
            return None
        return True


def change_percent(amount: Decimal, previous: Decimal | None) -> Decimal | str | None:
    """The change from ``previous`` to ``amount`` in percent of ``previous`` (to 0.1);
    "new" when nothing was spent before and something is now; None without a comparison
    or when both are nothing."""
    if previous is None or (not previous and not amount):
        return None
    if not previous:
        return NEW
    return ((amount - previous) / abs(previous) * 100).quantize(Decimal("0.1"))


@dataclass
class ChargebackReport:
    period: BillingPeriod | None  # the month's, when the span is one month
    span: Period
    previous_span: Period | None
    currency: str
    rows: list[ReportRow]  # departments by spend, then Unallocated (when the user may see it)
    idle_amount: Decimal | None  # None for a user who may not see the fleet's figures
    idle_absorbed: Decimal | None
    capacity_amount: Decimal | None
    class_names: list[str]
    cluster_names: list[str] = field(default_factory=list)  # "" for no named cluster
    pool_idle_amount: Decimal | None = None
    flagged_pool_hours: int | None = None  # pool-hours whose jobs exceed their allocation
    unmarked_jobs: list | None = None  # jobs run in namespaces that are no worker pool

    @property
    def departments_total(self) -> Decimal:
        return sum((r.spend for r in self.rows if r.department is not None), ZERO)

    @property
    def previous_departments_total(self) -> Decimal | None:
        if self.previous_span is None:
            return None
        return sum((r.previous_spend or ZERO for r in self.rows if r.department), ZERO)

    @property
    def departments_change(self) -> Decimal | None:
        previous = self.previous_departments_total
        return None if previous is None else self.departments_total - previous

    @property
    def departments_change_pct(self) -> Decimal | str | None:
        return change_percent(self.departments_total, self.previous_departments_total)


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _source_id(name: str, *, measure: tuple[str, ...]) -> int | None:
    """Looked up first: filtering the ledger by the source's id (not by a join on its name)
    lets PostgreSQL use the (source, department, hour) index whatever the history's size."""
    return (
        MetricSource.objects.filter(name=name, measure__in=measure)
        .values_list("pk", flat=True)
        .first()
    )


def queue_wait_p95(
    *, department_ids: list[int], start: dt.datetime, end: dt.datetime
) -> dict[tuple[int, str], float]:
    """p95 of the seconds jobs waited from submission to their start, per department and
    tier, over the jobs that started in ``[start, end)``. Work the submitter asked to hold
    for the off-peak hours waited on purpose, so it is left out."""
    waits: dict[tuple[int, str], list[float]] = defaultdict(list)
    for department_id, tier, submitted, started in GenerationJob.objects.filter(
        department__in=department_ids, started_at__gte=start, started_at__lt=end, off_peak=False
    ).values_list("department_id", "tier", "submitted_at", "started_at"):
        waits[(department_id, tier)].append((started - submitted).total_seconds())
    return {key: _percentile(values, 95) for key, values in waits.items()}


def latency_p95(
    *, department_ids: list[int], start: dt.datetime, end: dt.datetime
) -> dict[int, float]:
    """The p95 over the month's hours of each department's hourly p95 request latency
    (ms), from the ``latency`` source."""
    source_id = _source_id(LATENCY_SOURCE, measure=(Measure.LATENCY_P95_MS,))
    if source_id is None:
        return {}
    hourly: dict[int, list[float]] = defaultdict(list)
    for department_id, quantity in UsageRecord.objects.filter(
        source_id=source_id,
        department__in=department_ids,
        hour_start__gte=start,
        hour_start__lt=end,
    ).values_list("department_id", "quantity"):
        hourly[department_id].append(float(quantity))
    return {d: _percentile(values, 95) for d, values in hourly.items()}


def busy_gpu_seconds(
    *, department_ids: list[int], start: dt.datetime, end: dt.datetime
) -> dict[int, Decimal]:
    """GPU-seconds the GPUs were busy (``utilisation`` source), per department."""
    source_id = _source_id(UTILISATION_SOURCE, measure=GPU_TIME_MEASURES)
    if source_id is None:
        return {}
    return dict(
        UsageRecord.objects.filter(
            source_id=source_id,
            department__in=department_ids,
            hour_start__gte=start,
            hour_start__lt=end,
        )
        .values("department_id")
        .annotate(total=Sum("quantity"))
        .values_list("department_id", "total")
    )


def chargeback_report(*, user, period: BillingPeriod) -> ChargebackReport:
    """The month per department: spend (the statement's total) and its split by GPU class,
    GPU-hours, monthly budget use, efficiency and SLA compliance; then *Unallocated*, the
    idle capacity and what the fleet's capacity was worth (finance and IT only).

    Reads the period's statements as they stand: refresh the period first."""
    return span_chargeback_report(user=user, span=Period.month(period.month), periods=[period])


def periods_as_they_stand(*, span: Period) -> list[BillingPeriod]:
    """The stored periods of ``span``'s months, not refreshed: what the period before a
    report's is read from (as the trend reads earlier months), so that a report refreshes
    the months it shows and no others."""
    return list(BillingPeriod.objects.filter(month__in=span.months()).order_by("month"))


def span_chargeback_report(
    *,
    user,
    span: Period,
    periods: list[BillingPeriod],
    previous: list[BillingPeriod] | None = None,
) -> ChargebackReport:
    """:func:`chargeback_report` of several months: the sum of the months' statements
    (draft and finalized) per department and GPU class, the very figures each month's
    report gives, added up; the budget is the monthly budget times the months read;
    efficiency and SLA figures are measured over the whole span. ``periods`` are the
    span's months that began (:func:`billing.services.periods_for_reading`).

    With ``previous`` (the stored periods of ``span.previous()``:
    :func:`periods_as_they_stand`), each row and the total also carry what was spent
    then, so the change can be shown; a department that spent only then has a row of its
    own, at 0.

    Reads the statements as they stand: refresh the periods first."""
    saved = [p for p in periods if p.pk is not None]
    first = min((p.month for p in periods), default=span.start_month)
    last = max((p.month for p in periods), default=span.start_month)
    start, end = month_bounds(first)[0], month_bounds(last)[1]
    statements: dict[int, list[Statement]] = defaultdict(list)
    for statement in (
        statements_for_user(user=user).filter(period__in=saved).order_by("period__month")
    ):
        statements[statement.department_id].append(statement)
    spent_before: dict[int, Decimal] = {}
    if previous is not None:
        spent_before = dict(
            statements_for_user(user=user)
            .filter(period__in=[p for p in previous if p.pk is not None])
            .values("department_id")
            .annotate(spent=Sum("total"))
            .values_list("department_id", "spent")
        )
    ids = sorted(set(statements) | set(spent_before))
    departments = Department.objects.in_bulk(ids)
    by_class: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    by_cluster: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    class_names: set[str] = set()
    cluster_names: set[str] = set()
    for department_id, kind, class_name, cluster, amount in StatementLine.objects.filter(
        statement__in=[s.pk for found in statements.values() for s in found]
    ).values_list("department_id", "kind", "gpu_class__name", "cluster__slug", "amount"):
        name = class_name if kind in USED_KINDS and class_name else _other(kind)
        class_names.add(name)
        by_class[department_id][name] += amount
        if kind in USED_KINDS:
            cluster_names.add(cluster or "")
            by_cluster[department_id][cluster or ""] += amount
    budgets = dict(
        Quota.objects.filter(
            department__in=ids,
            kind=Quota.Kind.GPU_HOURS_MONTH,
            job_kind="",
            gpu_class__isnull=True,
        ).values_list("department_id", "limit")
    )
    busy = busy_gpu_seconds(department_ids=ids, start=start, end=end)
    waits = queue_wait_p95(department_ids=ids, start=start, end=end)
    latencies = latency_p95(department_ids=ids, start=start, end=end)
    levels: dict[int, list[ServiceLevel]] = defaultdict(list)
    for level in ServiceLevel.objects.filter(department__in=ids).order_by("tier"):
        levels[level.department_id].append(level)

    rows = []
    for d in ids:
        found = statements.get(d, [])
        seconds = sum((s.gpu_seconds for s in found), ZERO)
        rows.append(
            ReportRow(
                department=departments[d],
                name=departments[d].name,
                statement=found[0] if len(found) == 1 else None,
                statements=found,
                spend=sum((s.total for s in found), ZERO),
                previous_spend=spent_before.get(d, ZERO) if previous is not None else None,
                gpu_seconds=seconds,
                by_class=dict(by_class.get(d, {})),
                by_cluster=dict(by_cluster.get(d, {})),
                budget_gpu_hours=(
                    budgets[d] * len(periods) if budgets.get(d) is not None else None
                ),
                efficiency=(
                    (busy[d] / seconds).quantize(Decimal("0.0001"))
                    if seconds and d in busy
                    else None
                ),
                queue_wait=[
                    SlaFigure(
                        tier=level.tier,
                        measured=waits.get((d, level.tier)),
                        target=float(level.max_queue_wait_s)
                        if level.max_queue_wait_s is not None
                        else None,
                        unit="s",
                    )
                    for level in levels.get(d, [])
                ],
                latency=[
                    SlaFigure(
                        tier=level.tier,
                        measured=latencies.get(d),
                        target=float(level.latency_target_ms),
                        unit="ms",
                    )
                    for level in levels.get(d, [])
                    if level.latency_target_ms is not None
                ],
            )
        )
    rows.sort(key=lambda row: (-row.spend, row.name))
    fleet = roles.sees_all_departments(user)
    idle_absorbed = None
    if fleet:
        unallocated_by_class: dict[str, Decimal] = defaultdict(lambda: ZERO)
        unallocated_by_cluster: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for class_name, cluster, amount in StatementLine.objects.filter(
            period__in=saved, kind=LineKind.UNALLOCATED, statement__isnull=True
        ).values_list("gpu_class__name", "cluster__slug", "amount"):
            unallocated_by_class[class_name or _other(LineKind.UNALLOCATED)] += amount
            class_names.add(class_name or _other(LineKind.UNALLOCATED))
            unallocated_by_cluster[cluster or ""] += amount
            cluster_names.add(cluster or "")
        rows.append(
            ReportRow(
                department=None,
                name=UNALLOCATED,
                statement=None,
                spend=sum((p.unallocated_amount for p in periods), ZERO),
                previous_spend=(
                    sum((p.unallocated_amount for p in previous), ZERO)
                    if previous is not None
                    else None
                ),
                gpu_seconds=sum((p.unallocated_gpu_seconds for p in periods), ZERO),
                by_class=dict(unallocated_by_class),
                by_cluster=dict(unallocated_by_cluster),
            )
        )
        idle_absorbed = (
            StatementLine.objects.filter(
                period__in=saved, kind=LineKind.IDLE, statement__isnull=True
            ).aggregate(total=Sum("amount"))["total"]
            or ZERO
        )
    return ChargebackReport(
        period=periods[0] if len(periods) == 1 else None,
        span=span,
        previous_span=span.previous() if previous is not None else None,
        currency=periods[0].currency if periods else settings.BILLING_CURRENCY,
        rows=rows,
        idle_amount=sum((p.idle_amount for p in periods), ZERO) if fleet else None,
        idle_absorbed=idle_absorbed,
        capacity_amount=sum((p.capacity_amount for p in periods), ZERO) if fleet else None,
        class_names=sorted(class_names),
        cluster_names=sorted(cluster_names),
        pool_idle_amount=sum((p.pool_idle_amount for p in periods), ZERO) if fleet else None,
        flagged_pool_hours=(
            WorkerPoolHour.objects.filter(period__in=saved, flagged=True).count() if fleet else None
        ),
        unmarked_jobs=_unmarked_jobs(periods) if fleet else None,
    )


def _unmarked_jobs(periods: list[BillingPeriod]) -> list[dict]:
    """The periods' unmarked jobs, one entry per namespace (jobs and GPU-seconds added)."""
    if len(periods) == 1:
        return periods[0].unmarked_jobs
    merged: dict[tuple, dict] = {}
    for period in periods:
        for entry in period.unmarked_jobs:
            key = (entry.get("cluster"), entry.get("namespace"))
            if key not in merged:
                merged[key] = {**entry, "jobs": 0, "gpu_seconds": "0"}
            merged[key]["jobs"] += entry.get("jobs", 0)
            total = Decimal(merged[key]["gpu_seconds"]) + Decimal(entry.get("gpu_seconds", 0))
            merged[key]["gpu_seconds"] = f"{total.normalize():f}"
    return list(merged.values())


def _other(kind: str) -> str:
    return {
        LineKind.IDLE: "Idle capacity",
        LineKind.POOL_IDLE: "Worker pool idle",
        LineKind.ADJUSTMENT: "Adjustments",
        LineKind.UNALLOCATED: "Unknown model",
    }.get(kind, "Unknown model")


@dataclass(frozen=True)
class TrendPoint:
    month: dt.date
    department: str  # name, Unallocated, or "N other departments"
    amount: Decimal
    others: int = 0  # for the sum of the departments beyond the biggest spenders: how many


def cost_trend(
    *,
    user,
    months: list[dt.date],
    department: Department | None = None,
    top: int | None = None,
) -> list[TrendPoint]:
    """Each month's statement totals per department (and *Unallocated* for finance and IT)
    over the periods of ``months`` that exist. With ``top``, only the ``top`` departments
    that spent most over those months keep their own points; the rest are summed per month
    into one, in SQL, so the cost stays the same whatever the number of departments."""
    statements = statements_for_user(user=user).filter(period__month__in=months)
    if department is not None:
        statements = statements.filter(department=department)
    rest = None
    if top is not None and department is None:
        spenders = list(
            statements.values("department_id")
            .annotate(spent=Sum("total"))
            .order_by("-spent", "department__name")
            .values_list("department_id", flat=True)
        )
        if len(spenders) > top:
            rest = statements.exclude(department_id__in=spenders[:top])
            statements = statements.filter(department_id__in=spenders[:top])
            others = len(spenders) - top
    points = [
        TrendPoint(month=month, department=name, amount=total)
        for month, name, total in statements.values_list(
            "period__month", "department__name", "total"
        ).order_by("period__month", "department__name")
    ]
    if rest is not None:
        points += [
            TrendPoint(
                month=month, department=f"{others} other departments", amount=total, others=others
            )
            for month, total in rest.values("period__month")
            .annotate(spent=Sum("total"))
            .order_by("period__month")
            .values_list("period__month", "spent")
        ]
    if department is None and roles.sees_all_departments(user):
        points += [
            TrendPoint(month=month, department=UNALLOCATED, amount=amount)
            for month, amount in BillingPeriod.objects.filter(month__in=months).values_list(
                "month", "unallocated_amount"
            )
        ]
    return points


@dataclass(frozen=True)
class Reconciliation:
    """Departments' usage (namespace workloads and portal jobs) before their multipliers
    + *Unallocated* + worker pool idle + fleet idle, held against what the fleet's capacity
    was worth: the figures of the period."""

    departments_usage: Decimal
    unallocated: Decimal
    idle: Decimal
    capacity: Decimal
    pool_idle: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.departments_usage + self.unallocated + self.pool_idle + self.idle

    @property
    def difference(self) -> Decimal:
        return self.total - self.capacity


def reconciliation(*, period: BillingPeriod) -> Reconciliation:
    """The period's figures that must add up (finance and IT only)."""
    usage = (
        StatementLine.objects.filter(
            period=period, kind__in=USED_KINDS, statement__isnull=False
        ).aggregate(total=Sum("list_amount"))["total"]
        if period.pk is not None
        else None
    )
    return Reconciliation(
        departments_usage=usage or Decimal(0),
        unallocated=period.unallocated_amount,
        pool_idle=period.pool_idle_amount,
        idle=period.idle_amount,
        capacity=period.capacity_amount,
    )


def billing_source_name() -> str | None:
    return MetricSource.objects.filter(is_billing=True).values_list("name", flat=True).first()


# --- Worker pools ---------------------------------------------------------------------------


@dataclass
class PoolSummary:
    """A worker pool's month: what its pods were allocated, what its jobs used, the idle
    rest, and the hours its jobs exceeded the allocation beyond the tolerance."""

    namespace: str
    cluster: str | None  # slug; None: the namespace in every cluster
    allocation_seconds: Decimal = ZERO
    jobs_seconds: Decimal = ZERO
    idle_seconds: Decimal = ZERO
    excess_seconds: Decimal = ZERO
    hours: int = 0
    flagged_hours: list = field(default_factory=list)  # WorkerPoolHour rows

    @property
    def label(self) -> str:
        return namespace_label(self.namespace, self.cluster)

    @property
    def allocation_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.allocation_seconds)

    @property
    def jobs_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.jobs_seconds)

    @property
    def idle_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.idle_seconds)


def pool_hours(
    *, period: BillingPeriod, flagged: bool | None = None, namespace: str | None = None
) -> QuerySet[WorkerPoolHour]:
    """The month's pool-hours as it was last priced (finance and IT read them)."""
    if period.pk is None:
        return WorkerPoolHour.objects.none()
    hours = WorkerPoolHour.objects.filter(period=period).select_related("cluster", "gpu_class")
    if flagged is not None:
        hours = hours.filter(flagged=flagged)
    if namespace:
        hours = hours.filter(namespace=namespace)
    return hours.order_by("namespace", "cluster__slug", "gpu_class__name", "hour_start")


def pool_summaries(*, period: BillingPeriod, flagged_shown: int = 5) -> list[PoolSummary]:
    """Per worker pool, the month's totals and its first flagged hours."""
    summaries: dict[tuple, PoolSummary] = {}
    if period.pk is None:
        return []
    for row in (
        WorkerPoolHour.objects.filter(period=period)
        .values("namespace", "cluster__slug")
        .annotate(
            allocation=Sum("allocation_seconds"),
            jobs=Sum("jobs_seconds"),
            idle=Sum("idle_seconds"),
            excess=Sum("excess_seconds"),
            hours=Count("pk"),
        )
        .order_by("namespace", "cluster__slug")
    ):
        key = (row["namespace"], row["cluster__slug"])
        summaries[key] = PoolSummary(
            namespace=row["namespace"],
            cluster=row["cluster__slug"],
            allocation_seconds=row["allocation"] or ZERO,
            jobs_seconds=row["jobs"] or ZERO,
            idle_seconds=row["idle"] or ZERO,
            excess_seconds=row["excess"] or ZERO,
            hours=row["hours"],
        )
    for hour in pool_hours(period=period, flagged=True):
        summary = summaries.get((hour.namespace, hour.cluster.slug if hour.cluster else None))
        if summary is not None:
            summary.flagged_hours.append(hour)
    return list(summaries.values())


def billed_gpu_seconds(
    *, start: dt.datetime, end: dt.datetime, department: Department | None = None
) -> dict[tuple, Decimal]:
    """GPU-seconds per (department, GPU class, UTC hour) as the bill counts them: the
    billing sources' ledger of the namespaces that are not worker pools, plus the GPU
    time of the portal jobs run in a marked pool (``department`` None: every department,
    and *Unallocated* under None)."""
    pools = [
        engine.Pool(namespace=ns, cluster_id=cluster)
        for ns, cluster in WorkerPool.objects.values_list("namespace", "cluster_id")
    ]
    ledger = UsageRecord.objects.filter(
        source__is_billing=True, hour_start__gte=start, hour_start__lt=end
    ).exclude(engine.pools_filter(pools))
    jobs = JobGpuTime.objects.filter(hour_start__gte=start, hour_start__lt=end).filter(
        engine.pools_filter(pools, namespace_field="pool_namespace")
    )
    if department is not None:
        ledger, jobs = ledger.filter(department=department), jobs.filter(department=department)
    billed: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    for rows, seconds in ((ledger, "quantity"), (jobs, "gpu_seconds")):
        for row in (
            rows.values("department_id", "gpu_class_id", "hour_start")
            .annotate(total=Sum(seconds))
            .order_by()
        ):
            billed[(row["department_id"], row["gpu_class_id"], row["hour_start"])] += row["total"]
    return dict(billed)


def billed_daily_rows(
    start: dt.datetime, end: dt.datetime, *, department: Department
) -> list[dict]:
    """A department's GPU-hours per portal day and GPU class as the bill counts them
    (:func:`billed_gpu_seconds`), shaped like ``metering.selectors.usage_summary`` rows,
    for the department page's charts."""
    class_names = dict(GpuClass.objects.values_list("pk", "name"))
    class_slugs = dict(GpuClass.objects.values_list("pk", "slug"))
    zone = portal_zone()
    by_day: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    for (_, class_id, hour), seconds in billed_gpu_seconds(
        start=start, end=end, department=department
    ).items():
        local = hour.astimezone(zone)
        day = dt.datetime(local.year, local.month, local.day, tzinfo=zone)
        by_day[(day, class_id)] += seconds
    return [
        {
            "period_start": day,
            "gpu_class": class_slugs.get(class_id),
            "gpu_class_name": class_names.get(class_id, UNKNOWN_MODEL),
            "quantity": gpu_hours(seconds),
            "gpu_seconds": seconds,
        }
        for (day, class_id), seconds in sorted(by_day.items(), key=lambda item: repr(item[0]))
    ]


def billed_daily_rows_reader(*, department: Department, start: dt.datetime, end: dt.datetime):
    """``rows(start, end)`` over :func:`billed_daily_rows` of ``[start, end)``, read once:
    the department page asks for several windows inside it."""
    read = billed_daily_rows(start, end, department=department)

    def rows(window_start: dt.datetime, window_end: dt.datetime) -> list[dict]:
        if window_start < start or window_end > end:
            return billed_daily_rows(window_start, window_end, department=department)
        return [row for row in read if window_start <= row["period_start"] < window_end]

    return rows
