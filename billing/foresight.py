"""Reads that look ahead or look closer: month-end forecasts per department, GPU class and
fleet (GPU-hours and money), days of unusual spend, and what each portal job cost.

Selectors, like :mod:`billing.selectors` (and reading through it): the pages, the API and
the periodic alerts call these, so a figure is computed once. The maths is in
:mod:`billing.forecast` and :mod:`billing.anomalies` (no ORM there).

- **Forecast money**: what the month's draft has charged so far, plus the projected
  GPU-hours still to come × the effective rate so far (the draft's usage lines: their
  amount over their GPU-hours, so the mix of cards, off-peak hours and the department's
  multiplier it ran under carries on). Idle shares and adjustments stay as they stand.
- **Daily spend** (for anomalies): each day's GPU-hours per GPU class × the department's
  effective rate for that class in that day's month (its statement's usage lines).
- **Job cost**: a portal job's share of each statement line of portal jobs that charges
  it, the line's amount split over its jobs by their GPU time (largest remainder, to the
  cent), so a department's job costs add up to its *portal jobs* lines exactly. The line
  is the pricing module's (:mod:`billing.pricing`: the card in force for the job's class
  and tier in each hour, the off-peak multiplier of the hours inside the window, the
  department's multiplier); *estimated* while the statement is a draft (as last
  recomputed), *final* once it is finalized.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from billing import anomalies, forecast
from billing import selectors as billing_selectors
from billing.models import (
    USED_KINDS,
    BillingPeriod,
    LineKind,
    Statement,
    StatementLine,
    StatementLineJob,
    StatementStatus,
    minor_unit,
)
from billing.pricing import allocate, round_money
from core import calendar
from departments.models import Department, GpuClass, Quota
from metering.quantities import SECONDS_PER_HOUR, gpu_hours_shown
from metering.selectors import usage_department_ids_for_user

ZERO = Decimal(0)
HISTORY_DAYS = 30
HOUR = dt.timedelta(hours=1)


# --- The daily series -----------------------------------------------------------------------


def _day_hours(day: dt.date) -> float:
    start, end = calendar.day_bounds(day, day)
    # In UTC: two times of one zone subtract as wall-clock times (a 25-hour day is 24).
    return (end.astimezone(dt.UTC) - start.astimezone(dt.UTC)) / HOUR


def _today(now: dt.datetime) -> dt.date:
    return now.astimezone(calendar.portal_zone()).date()


def daily_gpu_seconds(
    *, first: dt.date, last: dt.date, department: Department | None = None
) -> dict[tuple[int | None, int | None], dict[dt.date, Decimal]]:
    """GPU-seconds per (department, GPU class) and portal day, from ``first`` to ``last``
    inclusive, as the bill counts them (:func:`billing.selectors.billed_gpu_seconds`);
    department None: *Unallocated*."""
    start, end = calendar.day_bounds(first, last)
    zone = calendar.portal_zone()
    series: dict[tuple, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for (department_id, class_id, hour), seconds in billing_selectors.billed_gpu_seconds(
        start=start, end=end, department=department
    ).items():
        series[(department_id, class_id)][hour.astimezone(zone).date()] += seconds
    return {key: dict(days) for key, days in series.items()}


def _sum_series(parts: Iterable[dict[dt.date, Decimal]]) -> dict[dt.date, Decimal]:
    total: dict[dt.date, Decimal] = defaultdict(lambda: ZERO)
    for part in parts:
        for day, seconds in part.items():
            total[day] += seconds
    return dict(total)


# --- Forecasts ------------------------------------------------------------------------------


@dataclass
class ForecastRow:
    """One forecast: of the fleet (``department`` None) or a department, over every GPU
    class or one. ``actual``: a month that has ended, given as its actual total."""

    department: Department | None
    gpu_class: GpuClass | None
    month: dt.date
    currency: str
    projection: forecast.Forecast
    actual: bool = False
    spend_to_date: Decimal | None = None
    rate: Decimal | None = None  # effective price of a GPU-hour so far
    quota: Quota | None = None
    ran_out_on: dt.date | None = None  # the day actual use reached the budget
    runs_out_on: dt.date | None = None  # the day the projection reaches it
    used_by_day: list[tuple[dt.date, float]] = field(default_factory=list)  # cumulative

    @property
    def scope(self) -> str:
        return "fleet" if self.department is None else "department"

    @property
    def budget(self) -> Decimal | None:
        return self.quota.limit if self.quota is not None else None

    def _spend(self, gpu_hours: float | None) -> Decimal | None:
        if gpu_hours is None or self.spend_to_date is None:
            return None
        if self.actual:
            return self.spend_to_date
        if self.rate is None:
            return None
        rest = Decimal(repr(max(0.0, gpu_hours - self.projection.used)))
        return round_money(self.spend_to_date + rest * self.rate, self.currency)

    @property
    def spend_expected(self) -> Decimal | None:
        return self._spend(self.projection.expected)

    @property
    def spend_low(self) -> Decimal | None:
        return None if self.actual else self._spend(self.projection.low)

    @property
    def spend_high(self) -> Decimal | None:
        return None if self.actual else self._spend(self.projection.high)

    @property
    def budget_pct_expected(self) -> Decimal | None:
        if not self.budget or self.projection.expected is None:
            return None
        return (Decimal(repr(self.projection.expected)) * 100 / self.budget).quantize(
            Decimal("0.1")
        )


def _money_basis(period: BillingPeriod) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(amount, GPU-seconds) of the month's usage lines, per (department, class), the
    departments' lines and *Unallocated* (department None)."""
    if period.pk is None:
        return {}
    basis: dict[tuple, tuple[Decimal, Decimal]] = {}
    for department_id, class_id, amount, seconds in (
        StatementLine.objects.filter(period=period, kind__in=[*USED_KINDS, LineKind.UNALLOCATED])
        .values("department_id", "gpu_class_id")
        .annotate(amount=Sum("amount"), seconds=Sum("gpu_seconds"))
        .values_list("department_id", "gpu_class_id", "amount", "seconds")
        .order_by()
    ):
        basis[(department_id, class_id)] = (amount or ZERO, seconds or ZERO)
    return basis


def _rate(amount: Decimal, seconds: Decimal) -> Decimal | None:
    return amount * SECONDS_PER_HOUR / seconds if seconds else None


def _budgets(department_ids) -> dict[tuple[int, int | None], Quota]:
    return {
        (quota.department_id, quota.gpu_class_id): quota
        for quota in Quota.objects.filter(
            department__in=department_ids, kind=Quota.Kind.GPU_HOURS_MONTH, job_kind=""
        ).select_related("department", "gpu_class")
    }


def _ran_out(used_by_day: list[tuple[dt.date, float]], budget: Decimal | None) -> dt.date | None:
    if budget is None:
        return None
    return next((day for day, used in used_by_day if used >= float(budget)), None)


def forecasts(
    *,
    user,
    period: BillingPeriod,
    now: dt.datetime | None = None,
    department: Department | None = None,
    gpu_class: GpuClass | None = None,
    by_class: bool = True,
) -> list[ForecastRow]:
    """The month-end forecasts ``user`` (None: the portal itself, every one) may read for
    ``period`` (the current month; an
    ended month gives its actual totals, no band): the fleet and the fleet per GPU class
    (finance and IT), then each department and, with ``by_class``, each department per
    class. ``department``/``gpu_class`` narrow the rows. Reads the period's lines as they
    stand: refresh the period first."""
    now = now or timezone.now()
    ids = None if user is None else usage_department_ids_for_user(user=user)
    if ids is not None and not ids:
        return []
    month = period.month
    month_start, month_end = calendar.month_bounds(month)
    today = _today(now)
    actual = month_end <= now
    first_of_month = month_start.astimezone(calendar.portal_zone()).date()
    last_of_month = (month_end.astimezone(calendar.portal_zone()) - HOUR).date()
    history_days = [today - dt.timedelta(days=n) for n in range(HISTORY_DAYS, 0, -1)]
    first = first_of_month if actual else min(first_of_month, history_days[0])
    last = last_of_month if actual else today
    series = daily_gpu_seconds(first=first, last=last, department=department)
    departments = Department.objects.order_by("name")
    if department is not None:
        departments = departments.filter(pk=department.pk)
    if ids is not None:
        departments = departments.filter(pk__in=ids)
    seen = {d for d, _ in series}
    departments = [d for d in departments if d.active or d.pk in seen]
    classes = list(GpuClass.objects.order_by("name"))
    if gpu_class is not None:
        classes = [gpu_class]
    class_by_id = {c.pk: c for c in classes}
    basis = _money_basis(period)
    budgets = _budgets([d.pk for d in departments])
    statement_totals = dict(
        Statement.objects.filter(period=period).values_list("department_id", "total")
        if period.pk is not None
        else []
    )
    remaining = []
    if not actual:
        _, today_end = calendar.day_bounds(today, today)
        remaining.append(forecast.Remaining(today, (min(today_end, month_end) - now) / HOUR))
        day = today + dt.timedelta(days=1)
        while day <= last_of_month:
            remaining.append(forecast.Remaining(day, _day_hours(day)))
            day += dt.timedelta(days=1)

    def row(dept, gpu, seconds_by_day, spend, money_key) -> ForecastRow:
        hours = {d: float(s / SECONDS_PER_HOUR) for d, s in seconds_by_day.items()}
        used, cumulative = 0.0, []
        day = first_of_month
        while day <= min(last, last_of_month):
            used += hours.get(day, 0.0)
            cumulative.append((day, used))
            day += dt.timedelta(days=1)
        if actual:
            projection = forecast.Forecast(
                enough_data=True, used=used, expected=used, low=used, high=used
            )
        else:
            projection = forecast.project(
                history=[forecast.Day(d, hours.get(d, 0.0), _day_hours(d)) for d in history_days],
                used=used,
                remaining=remaining,
            )
        amount, seconds = ZERO, ZERO
        for key in money_key:
            a, s = basis.get(key, (ZERO, ZERO))
            amount, seconds = amount + a, seconds + s
        quota = budgets.get((dept.pk, gpu.pk if gpu else None)) if dept is not None else None
        result = ForecastRow(
            department=dept,
            gpu_class=gpu,
            month=month,
            currency=period.currency,
            projection=projection,
            actual=actual,
            spend_to_date=spend if spend is not None else amount,
            rate=_rate(amount, seconds),
            quota=quota,
            used_by_day=cumulative,
        )
        result.ran_out_on = _ran_out(cumulative, result.budget)
        if result.budget is not None and not actual and result.ran_out_on is None:
            crossed = forecast.crossing(projection, budget=float(result.budget), start=today)
            result.runs_out_on = crossed[0] if crossed else None
        return result

    rows = []
    if ids is None and department is None:
        fleet_keys = list(series)
        if gpu_class is None:
            rows.append(
                row(
                    None,
                    None,
                    _sum_series(series[k] for k in fleet_keys),
                    sum(statement_totals.values(), ZERO) + period.unallocated_amount,
                    list(basis),
                )
            )
        for gpu in classes:
            rows.append(
                row(
                    None,
                    gpu,
                    _sum_series(series[k] for k in fleet_keys if k[1] == gpu.pk),
                    None,
                    [k for k in basis if k[1] == gpu.pk],
                )
            )
    for dept in departments:
        own = [k for k in series if k[0] == dept.pk]
        if gpu_class is None:
            rows.append(
                row(
                    dept,
                    None,
                    _sum_series(series[k] for k in own),
                    statement_totals.get(dept.pk, ZERO),
                    [k for k in basis if k[0] == dept.pk],
                )
            )
        if by_class or gpu_class is not None:
            for class_id in sorted(
                {k[1] for k in own if k[1] in class_by_id}, key=lambda c: class_by_id[c].name
            ):
                rows.append(
                    row(
                        dept,
                        class_by_id[class_id],
                        series[(dept.pk, class_id)],
                        None,
                        [(dept.pk, class_id)],
                    )
                )
    return rows


# --- Daily spend and its anomalies ----------------------------------------------------------


def _class_rates(months: list[dt.date]) -> dict[tuple[dt.date, int, int | None], Decimal]:
    """Each department's effective price of a GPU-hour per month and class (class None:
    over all its classes), from the months' usage lines as they stand."""
    totals: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for month, department_id, class_id, amount, seconds in (
        StatementLine.objects.filter(
            period__month__in=months, kind__in=USED_KINDS, statement__isnull=False
        )
        .values("period__month", "department_id", "gpu_class_id")
        .annotate(amount=Sum("amount"), seconds=Sum("gpu_seconds"))
        .values_list("period__month", "department_id", "gpu_class_id", "amount", "seconds")
        .order_by()
    ):
        for key in ((month, department_id, class_id), (month, department_id, None)):
            totals[key][0] += amount or ZERO
            totals[key][1] += seconds or ZERO
    return {key: _rate(a, s) for key, (a, s) in totals.items() if s}


def daily_spend(
    *, first: dt.date, last: dt.date, department_ids=None
) -> dict[int, dict[dt.date, Decimal]]:
    """Spend per department and portal day from ``first`` to ``last``: each day's
    GPU-hours per class × the department's effective rate of that class in that month."""
    series = daily_gpu_seconds(first=first, last=last)
    months = sorted({calendar.month_of(day) for day in (first, last)} | {first.replace(day=1)})
    month = months[0]
    while month < last.replace(day=1):
        month = calendar.next_month(month)
        months.append(month)
    rates = _class_rates(sorted(set(months)))
    spend: dict[int, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for (department_id, class_id), days in series.items():
        if department_id is None or (
            department_ids is not None and department_id not in department_ids
        ):
            continue
        for day, seconds in days.items():
            m = day.replace(day=1)
            rate = rates.get((m, department_id, class_id)) or rates.get((m, department_id, None))
            if rate:
                spend[department_id][day] += seconds * rate / SECONDS_PER_HOUR
    return {d: dict(days) for d, days in spend.items()}


@dataclass(frozen=True)
class DepartmentAnomaly:
    department: Department
    anomaly: anomalies.Anomaly
    currency: str

    @property
    def text(self) -> str:
        unit = minor_unit(self.currency)
        a = self.anomaly
        amount = a.amount.quantize(unit)
        usual = a.usual.quantize(unit)
        when = f"{a.day.day} {a.day:%b}"
        if a.change is None:
            return f"{amount} {self.currency} on {when} vs a usual 0 {self.currency}"
        pct = (a.change * 100).quantize(Decimal(1))
        sign = "+" if pct >= 0 else "-"
        return (
            f"{sign}{abs(pct)} % on {when}: {amount} {self.currency} vs a usual "
            f"{usual} {self.currency}"
        )


def anomaly_minimum() -> Decimal:
    return Decimal(str(settings.BILLING_ANOMALY_MIN_AMOUNT))


def spend_anomalies(
    *, user, days: list[dt.date], department: Department | None = None
) -> list[DepartmentAnomaly]:
    """The departments' days among ``days`` (complete portal days) whose spend lies far
    outside their previous ``anomalies.WINDOW_DAYS`` days, for the departments ``user``
    may read; newest first."""
    if not days:
        return []
    ids = None if user is None else usage_department_ids_for_user(user=user)
    if ids is not None and not ids:
        return []
    if department is not None:
        ids = frozenset({department.pk}) if ids is None or department.pk in ids else frozenset()
    first = min(days) - dt.timedelta(days=anomalies.WINDOW_DAYS)
    spend = daily_spend(first=first, last=max(days), department_ids=ids)
    departments = Department.objects.in_bulk(list(spend))
    found = []
    for department_id, series in spend.items():
        started = min((d for d, v in series.items() if v), default=None)
        for anomaly in anomalies.find(series, days=days, minimum=anomaly_minimum(), first=started):
            found.append(
                DepartmentAnomaly(
                    department=departments[department_id],
                    anomaly=anomaly,
                    currency=settings.BILLING_CURRENCY,
                )
            )
    return sorted(found, key=lambda f: (-f.anomaly.day.toordinal(), f.department.name))


# --- What each job cost ---------------------------------------------------------------------


@dataclass
class JobCost:
    amount: Decimal
    currency: str
    final: bool  # every line that charges it is on a finalized statement
    gpu_seconds: Decimal = ZERO  # its GPU time on those lines

    @property
    def label(self) -> str:
        return "final" if self.final else "estimated"

    @property
    def gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.gpu_seconds)


def _line_shares(line_ids: Iterable[int]) -> dict[tuple[int, object], Decimal]:
    """(line, job) -> the job's share of the line's amount: the amount split over the
    line's jobs by their GPU time, to the minor unit, by largest remainder."""
    rows = list(
        StatementLineJob.objects.filter(line__in=list(line_ids))
        .order_by("line_id", "job_id")
        .values_list(
            "line_id", "job_id", "gpu_seconds", "line__amount", "line__statement__currency"
        )
    )
    by_line: dict[int, list] = defaultdict(list)
    for line_id, job_id, seconds, amount, currency in rows:
        by_line[line_id].append((job_id, seconds, amount, currency))
    shares = {}
    for line_id, entries in by_line.items():
        weights = [seconds for _, seconds, _, _ in entries]
        amount, currency = entries[0][2], entries[0][3]
        if sum(weights, ZERO) <= 0:
            parts = [ZERO] * len(entries)
        else:
            parts = allocate(round_money(amount, currency), weights, minor_unit(currency))
        for (job_id, _, _, _), part in zip(entries, parts, strict=True):
            shares[(line_id, job_id)] = part
    return shares


def job_costs(jobs: Iterable) -> dict:
    """What each of ``jobs`` (jobs or their ids) cost, by job id: its shares of the
    statement lines that charge it (see the module's docstring). A job no line charges
    yet (not run, its time not priced yet, or run in a namespace that is no worker pool,
    where its time is that namespace's usage) is left out."""
    job_ids = [getattr(job, "pk", job) for job in jobs]
    if not job_ids:
        return {}
    on_lines = list(
        StatementLineJob.objects.filter(job__in=job_ids, line__kind=LineKind.JOBS).values_list(
            "line_id",
            "job_id",
            "gpu_seconds",
            "line__statement__status",
            "line__statement__currency",
        )
    )
    shares = _line_shares({line_id for line_id, *_ in on_lines})
    costs: dict = {}
    for line_id, job_id, seconds, status, currency in on_lines:
        cost = costs.setdefault(job_id, JobCost(amount=ZERO, currency=currency, final=True))
        cost.amount += shares.get((line_id, job_id), ZERO)
        cost.gpu_seconds += seconds
        cost.final = cost.final and status == StatementStatus.FINALIZED
    return costs


@dataclass(frozen=True)
class CostGroup:
    name: str
    jobs: int
    gpu_seconds: Decimal
    amount: Decimal

    @property
    def gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.gpu_seconds)


@dataclass
class JobCostBreakdown:
    month: dt.date
    currency: str
    final: bool
    by_kind: list[CostGroup]
    by_submitter: list[CostGroup]
    own_only: bool

    @property
    def total(self) -> Decimal:
        return sum((g.amount for g in self.by_kind), ZERO)


def job_cost_breakdown(*, user, department: Department, period: BillingPeriod) -> JobCostBreakdown:
    """The month's portal jobs of ``department`` by job kind and by submitter, with what
    they cost: every job for finance, IT and the department's managers; a member's own
    jobs only. Reads the period's lines as they stand."""
    ids = None if user is None else usage_department_ids_for_user(user=user)
    own_only = ids is not None and department.pk not in ids
    lines = (
        StatementLine.objects.filter(
            period=period, kind=LineKind.JOBS, statement__department=department
        )
        if period.pk is not None
        else StatementLine.objects.none()
    )
    line_ids = list(lines.values_list("pk", flat=True))
    shares = _line_shares(line_ids)
    rows = StatementLineJob.objects.filter(line__in=line_ids).values_list(
        "line_id",
        "job_id",
        "gpu_seconds",
        "job__kind__name",
        "job__submitter__username",
        "job__submitter_id",
    )
    kinds: dict[str, list] = defaultdict(lambda: [set(), ZERO, ZERO])
    people: dict[str, list] = defaultdict(lambda: [set(), ZERO, ZERO])
    for line_id, job_id, seconds, kind, submitter, submitter_id in rows:
        if own_only and submitter_id != user.pk:
            continue
        amount = shares.get((line_id, job_id), ZERO)
        for groups, name in ((kinds, kind), (people, submitter)):
            groups[name][0].add(job_id)
            groups[name][1] += seconds
            groups[name][2] += amount

    def listed(groups) -> list[CostGroup]:
        return sorted(
            (CostGroup(name, len(j), s, a) for name, (j, s, a) in groups.items()),
            key=lambda g: (-g.amount, g.name),
        )

    final = (
        period.pk is not None
        and not Statement.objects.filter(period=period, department=department)
        .exclude(status=StatementStatus.FINALIZED)
        .exists()
    )
    return JobCostBreakdown(
        month=period.month,
        currency=period.currency,
        final=final,
        by_kind=listed(kinds),
        by_submitter=listed(people),
        own_only=own_only,
    )
