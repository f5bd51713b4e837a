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

from django.db.models import Prefetch, QuerySet, Sum

from billing.models import (
    Adjustment,
    BillingPeriod,
    LineKind,
    Statement,
    StatementLine,
)
from departments.models import Department, Quota, ServiceLevel
from jobs.models import GenerationJob
from metering.models import GPU_TIME_MEASURES, Measure, MetricSource, UsageRecord
from metering.quantities import gpu_hours, gpu_hours_shown
from metering.selectors import (
    UNALLOCATED,
    month_bounds,
    usage_department_ids_for_user,
)
from portal import roles

ZERO = Decimal(0)
UTILISATION_SOURCE = "utilisation"
LATENCY_SOURCE = "latency"


# --- Statements -----------------------------------------------------------------------------


def statements_for_user(*, user) -> QuerySet[Statement]:
    """Finance and IT read every statement; a manager those of the departments they
    manage; a member none (members see their own jobs, not the department's money)."""
    statements = Statement.objects.select_related("period", "department", "finalized_by")
    ids = usage_department_ids_for_user(user=user)
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
                    "gpu_class", "rate_card", "adjustment__original__period"
                ).order_by("position", "pk"),
            ),
            Prefetch(
                "adjustments_applied",
                queryset=Adjustment.objects.select_related("original__period", "created_by"),
            ),
        )
        .get(pk=pk)
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
    budget_gpu_hours: Decimal | None = None
    efficiency: Decimal | None = None  # busy GPU-seconds / billed GPU-seconds
    queue_wait: list[SlaFigure] = field(default_factory=list)  # p95 s per tier
    latency: list[SlaFigure] = field(default_factory=list)  # p95 ms per tier target

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
        verdicts = [f.met for f in [*self.queue_wait, *self.latency] if f.met is not None]
        return all(verdicts) if verdicts else None


@dataclass
class ChargebackReport:
    period: BillingPeriod
    currency: str
    rows: list[ReportRow]  # departments by spend, then Unallocated (when the user may see it)
    idle_amount: Decimal | None  # None for a user who may not see the fleet's figures
    idle_absorbed: Decimal | None
    capacity_amount: Decimal | None
    class_names: list[str]

    @property
    def departments_total(self) -> Decimal:
        return sum((r.spend for r in self.rows if r.department is not None), ZERO)


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
    start, end = month_bounds(period.month)
    statements = (
        list(
            statements_for_user(user=user)
            .filter(period=period)
            .order_by("-total", "department__name")
        )
        if period.pk is not None
        else []
    )
    ids = [s.department_id for s in statements]
    by_class: dict[int, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    class_names: set[str] = set()
    for department_id, kind, class_name, amount in StatementLine.objects.filter(
        statement__in=[s.pk for s in statements]
    ).values_list("department_id", "kind", "gpu_class__name", "amount"):
        name = class_name if kind == LineKind.USAGE and class_name else _other(kind)
        class_names.add(name)
        by_class[department_id][name] += amount
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
    for statement in statements:
        d = statement.department_id
        seconds = statement.gpu_seconds
        rows.append(
            ReportRow(
                department=statement.department,
                name=statement.department.name,
                statement=statement,
                spend=statement.total,
                gpu_seconds=seconds,
                by_class=dict(by_class.get(d, {})),
                budget_gpu_hours=budgets.get(d),
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
    fleet = roles.sees_all_departments(user)
    idle_absorbed = None
    if fleet:
        unallocated = period_lines(period=period, kind=LineKind.UNALLOCATED)
        unallocated_by_class: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for class_name, amount in unallocated.values_list("gpu_class__name", "amount"):
            unallocated_by_class[class_name or _other(LineKind.UNALLOCATED)] += amount
            class_names.add(class_name or _other(LineKind.UNALLOCATED))
        rows.append(
            ReportRow(
                department=None,
                name=UNALLOCATED,
                statement=None,
                spend=period.unallocated_amount,
                gpu_seconds=period.unallocated_gpu_seconds,
                by_class=dict(unallocated_by_class),
            )
        )
        idle_absorbed = (
            period_lines(period=period, kind=LineKind.IDLE).aggregate(total=Sum("amount"))["total"]
            or ZERO
        )
    return ChargebackReport(
        period=period,
        currency=period.currency,
        rows=rows,
        idle_amount=period.idle_amount if fleet else None,
        idle_absorbed=idle_absorbed,
        capacity_amount=period.capacity_amount if fleet else None,
        class_names=sorted(class_names),
    )


def _other(kind: str) -> str:
    return {
        LineKind.IDLE: "Idle capacity",
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
    """Departments' usage before their multipliers + *Unallocated* + idle capacity, held
    against what the fleet's capacity was worth: the figures of the period."""

    departments_usage: Decimal
    unallocated: Decimal
    idle: Decimal
    capacity: Decimal

    @property
    def total(self) -> Decimal:
        return self.departments_usage + self.unallocated + self.idle

    @property
    def difference(self) -> Decimal:
        return self.total - self.capacity


def reconciliation(*, period: BillingPeriod) -> Reconciliation:
    """The period's figures that must add up (finance and IT only)."""
    usage = (
        StatementLine.objects.filter(
            period=period, kind=LineKind.USAGE, statement__isnull=False
        ).aggregate(total=Sum("list_amount"))["total"]
        if period.pk is not None
        else None
    )
    return Reconciliation(
        departments_usage=usage or Decimal(0),
        unallocated=period.unallocated_amount,
        idle=period.idle_amount,
        capacity=period.capacity_amount,
    )


def billing_source_name() -> str | None:
    return MetricSource.objects.filter(is_billing=True).values_list("name", flat=True).first()
