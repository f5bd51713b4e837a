"""Operations that change billing state: refreshing a month's drafts from the ledger,
finalizing statements, and adjustments.

Every operation on a month holds its period's row (``SELECT … FOR UPDATE``) for its whole
transaction, so a refresh and a finalization of the same month never interleave.
"""

import datetime as dt
import hashlib
import logging
from decimal import Decimal
from fractions import Fraction

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from billing import notifications
from billing import pricing as engine
from billing.models import (
    USED_KINDS,
    Adjustment,
    AdjustmentKind,
    BillingPeriod,
    DepartmentMultiplier,
    LineKind,
    RateCard,
    Statement,
    StatementLine,
    StatementLineJob,
    StatementStatus,
    WorkerPoolHour,
)
from core.calendar import Period, month_bounds, month_ended, month_of, next_month
from departments.models import (
    Cluster,
    Department,
    GpuClass,
    Namespace,
    OffPeakWindow,
    WorkerPool,
    namespace_label,
)
from jobs.models import JobGpuTime, JobKind
from metering import quantities
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.quantities import gpu_hours_text

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


class BillingError(Exception):
    """An operation that cannot be done, with words a person can act on; ``field`` names
    the input it is about, when one is."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- Months ---------------------------------------------------------------------------------


# --- Inputs ---------------------------------------------------------------------------------


def pricing_current(*, period: BillingPeriod) -> engine.Pricing:
    """The prices in force now for ``period``: its cards, multipliers, off-peak windows,
    GPU capacities, namespace tiers and its idle-cost policy."""
    start, end = month_bounds(period.month)
    in_month = Q(valid_from__lt=end) & (Q(valid_to__isnull=True) | Q(valid_to__gt=start))
    return engine.Pricing(
        currency=period.currency,
        cards=[
            engine.Card(
                id=card.pk,
                gpu_class_id=card.gpu_class_id,
                tier=card.tier,
                price=card.price_per_gpu_hour,
                currency=card.currency,
                valid_from=card.valid_from,
                valid_to=card.valid_to,
            )
            for card in RateCard.objects.filter(in_month).order_by("valid_from", "pk")
        ],
        multipliers=[
            engine.Multiplier(
                department_id=entry.department_id,
                multiplier=entry.multiplier,
                valid_from=entry.valid_from,
                valid_to=entry.valid_to,
            )
            for entry in DepartmentMultiplier.objects.filter(in_month).order_by("valid_from")
        ],
        off_peak=list(OffPeakWindow.objects.filter(active=True).order_by("name")),
        capacity_gpus=dict(GpuClass.objects.values_list("pk", "capacity_gpus")),
        namespace_tiers={
            namespace_label(name, slug): tier
            for name, slug, tier in Namespace.objects.values_list("name", "cluster__slug", "tier")
        },
        idle_policy=period.idle_policy,
        idle_department_id=period.idle_department_id,
        cluster_slugs=dict(Cluster.objects.values_list("pk", "slug")),
        worker_pools=_worker_pools(period),
        gpu_fractions={
            pk: (physical, Fraction(numerator, denominator))
            for pk, physical, numerator, denominator in GpuClass.objects.filter(
                physical_class__isnull=False
            ).values_list("pk", "physical_class_id", "fraction_numerator", "fraction_denominator")
        },
    )


def _worker_pools(period: BillingPeriod) -> list[engine.Pool]:
    """The worker pools a month is priced with: those its first finalized statement kept
    (marking a pool later does not move a closed month's figures), else those marked now."""
    if period.pk is not None:
        kept = (
            Statement.objects.filter(period=period, status=StatementStatus.FINALIZED)
            .order_by("finalized_at", "pk")
            .values_list("pricing", flat=True)
            .first()
        )
        if kept is not None:
            return _pools_from_snapshot(kept)
    return [
        engine.Pool(namespace=namespace, cluster_id=cluster_id)
        for namespace, cluster_id in WorkerPool.objects.values_list("namespace", "cluster_id")
    ]


def _pools_from_snapshot(snapshot: dict) -> list[engine.Pool]:
    # A statement finalized before worker pools existed priced every namespace as usage.
    return [
        engine.Pool(namespace=pool["namespace"], cluster_id=pool["cluster"])
        for pool in snapshot.get("worker_pools", [])
    ]


def pricing_snapshot(pricing: engine.Pricing) -> dict:
    """What a finalized statement keeps of the prices it used, as JSON."""

    def when(moment):
        return moment.isoformat() if moment else None

    return {
        "currency": pricing.currency,
        "rate_cards": [
            {
                "id": c.id,
                "gpu_class": c.gpu_class_id,
                "tier": c.tier,
                "price_per_gpu_hour": str(c.price),
                "currency": c.currency,
                "valid_from": when(c.valid_from),
                "valid_to": when(c.valid_to),
            }
            for c in pricing.cards
        ],
        "department_multipliers": [
            {
                "department": m.department_id,
                "multiplier": str(m.multiplier),
                "valid_from": when(m.valid_from),
                "valid_to": when(m.valid_to),
            }
            for m in pricing.multipliers
        ],
        "off_peak_windows": [
            {
                "name": w.name,
                "weekdays": w.weekdays,
                "start_time": w.start_time.isoformat(),
                "end_time": w.end_time.isoformat(),
                "time_zone": w.time_zone,
                "price_multiplier": str(w.price_multiplier),
            }
            for w in pricing.off_peak
        ],
        "capacity_gpus": {str(k): v for k, v in pricing.capacity_gpus.items()},
        "namespace_tiers": pricing.namespace_tiers,
        "idle_policy": pricing.idle_policy,
        "idle_department": pricing.idle_department_id,
        "clusters": {str(k): v for k, v in pricing.cluster_slugs.items()},
        "worker_pools": [
            {"namespace": pool.namespace, "cluster": pool.cluster_id}
            for pool in pricing.worker_pools
        ],
        "gpu_fractions": {
            str(k): [physical, fraction.numerator, fraction.denominator]
            for k, (physical, fraction) in pricing.gpu_fractions.items()
        },
    }


def pricing_from_snapshot(snapshot: dict, *, period: BillingPeriod) -> engine.Pricing:
    """The prices a finalized statement kept (:func:`pricing_snapshot`), to price its month
    again exactly as it was priced."""

    def when(value):
        return dt.datetime.fromisoformat(value) if value else None

    return engine.Pricing(
        currency=snapshot.get("currency", period.currency),
        cards=[
            engine.Card(
                id=c["id"],
                gpu_class_id=c["gpu_class"],
                tier=c["tier"],
                price=Decimal(c["price_per_gpu_hour"]),
                currency=c["currency"],
                valid_from=when(c["valid_from"]),
                valid_to=when(c["valid_to"]),
            )
            for c in snapshot.get("rate_cards", [])
        ],
        multipliers=[
            engine.Multiplier(
                department_id=m["department"],
                multiplier=Decimal(m["multiplier"]),
                valid_from=when(m["valid_from"]),
                valid_to=when(m["valid_to"]),
            )
            for m in snapshot.get("department_multipliers", [])
        ],
        off_peak=[
            OffPeakWindow(
                name=w["name"],
                weekdays=w["weekdays"],
                start_time=dt.time.fromisoformat(w["start_time"]),
                end_time=dt.time.fromisoformat(w["end_time"]),
                time_zone=w["time_zone"],
                price_multiplier=Decimal(w["price_multiplier"]),
            )
            for w in snapshot.get("off_peak_windows", [])
        ],
        capacity_gpus={int(k): v for k, v in snapshot.get("capacity_gpus", {}).items()},
        namespace_tiers=snapshot.get("namespace_tiers", {}),
        idle_policy=snapshot.get("idle_policy", period.idle_policy),
        idle_department_id=snapshot.get("idle_department"),
        cluster_slugs={int(k): v for k, v in snapshot.get("clusters", {}).items()},
        worker_pools=_pools_from_snapshot(snapshot),
        gpu_fractions={
            int(k): (physical, Fraction(numerator, denominator))
            for k, (physical, numerator, denominator) in snapshot.get("gpu_fractions", {}).items()
        },
    )


def inputs_version(*, period: BillingPeriod) -> str:
    """A fingerprint of everything a month's figures depend on: the billing source's
    successful runs over the month, the prices, capacities, namespaces, departments, the
    period's policy and the adjustments it carries. Equal fingerprints, equal figures."""
    start, end = month_bounds(period.month)
    parts: list = [period.currency, period.idle_policy, period.idle_department_id]
    parts.append(
        MeteringRun.objects.filter(
            source__is_billing=True,
            status=MeteringRun.Status.SUCCEEDED,
            window_start__lt=end,
            window_end__gt=start,
        ).aggregate(n=Count("pk"), last=Max("pk"), source=Max("source_id"))
    )
    for model in (RateCard, DepartmentMultiplier, OffPeakWindow, GpuClass, Department):
        parts.append(model.objects.aggregate(n=Count("pk"), last=Max("updated_at")))
    parts.append(
        sorted(
            Namespace.objects.values_list("name", "cluster_id", "department_id", "tier"),
            key=repr,
        )
    )
    parts.append(sorted(Cluster.objects.values_list("pk", "slug")))
    parts.append(sorted(WorkerPool.objects.values_list("namespace", "cluster_id"), key=repr))
    parts.append(JobKind.objects.aggregate(n=Count("pk"), last=Max("updated_at")))
    parts.append(
        JobGpuTime.objects.filter(hour_start__gte=start, hour_start__lt=end).aggregate(
            n=Count("pk"), last=Max("updated_at"), seconds=Sum("gpu_seconds")
        )
    )
    parts.append(
        Adjustment.objects.filter(applied_to__period=period).aggregate(
            n=Count("pk"), last=Max("pk")
        )
    )
    parts.append(
        Statement.objects.filter(period=period, status=StatementStatus.FINALIZED).aggregate(
            n=Count("pk"), adjusted=Count("adjustments")
        )
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# --- Refreshing a month ---------------------------------------------------------------------


def period_get_or_create(*, month: dt.date) -> BillingPeriod:
    period, _ = BillingPeriod.objects.get_or_create(
        month=month.replace(day=1),
        defaults={
            "idle_policy": settings.BILLING_IDLE_POLICY,
            "currency": settings.BILLING_CURRENCY,
        },
    )
    return period


def month_opened(month: dt.date) -> bool:
    """Whether ``month`` has statements, or is due them: it has a period already, it is the
    running month, or the billing source metered something in it (history backfilled)."""
    month = month.replace(day=1)
    if month == month_of(timezone.now()) or BillingPeriod.objects.filter(month=month).exists():
        return True
    start, end = month_bounds(month)
    return UsageRecord.objects.filter(
        source__is_billing=True, hour_start__gte=start, hour_start__lt=end
    ).exists()


def period_for_reading(*, month: dt.date) -> BillingPeriod:
    """The month's period, its drafts brought up to date, for a page or a report. Reading
    a month that nothing opened (:func:`month_opened`) opens nothing: an unsaved, empty
    period comes back, and the month shows nothing charged rather than a statement of 0.00
    for every department, made by whoever looked."""
    if month_opened(month):
        return period_refresh(month=month)
    return BillingPeriod(
        month=month.replace(day=1),
        idle_policy=settings.BILLING_IDLE_POLICY,
        currency=settings.BILLING_CURRENCY,
    )


def periods_for_reading(*, span: Period) -> list[BillingPeriod]:
    """:func:`period_for_reading` of each month of ``span`` that has begun, oldest first
    (late usage of an earlier, finalized month lands on a later one)."""
    current = month_of(timezone.now())
    return [period_for_reading(month=month) for month in span.months() if month <= current]


def _lock_period(month: dt.date) -> BillingPeriod:
    period_get_or_create(month=month)
    return BillingPeriod.objects.select_for_update().get(month=month.replace(day=1))


def _save_figures(period: BillingPeriod) -> None:
    """Save the period's recomputed figures and the fingerprint of what they came from.
    Not a version in its history: that records what people chose (the idle-cost policy),
    not every recomputation."""
    period.inputs_version = inputs_version(period=period)
    period.skip_history_when_saving = True
    try:
        period.save()
    finally:
        del period.skip_history_when_saving


def period_refresh(*, month: dt.date, force: bool = False) -> BillingPeriod:
    """Bring the month's draft statements, its *Unallocated* and idle figures up to date
    with the ledger and the prices, and turn usage that finalized statements do not hold
    into adjustments on the next open statement. Does nothing when nothing they depend on
    changed since the last refresh (unless ``force``). Safe to call at any time."""
    period, _ = _period_refresh(month=month, force=force)
    return period


def _period_refresh(*, month: dt.date, force: bool) -> tuple[BillingPeriod, bool]:
    """:func:`period_refresh`, and whether it recomputed the month."""
    with transaction.atomic():
        period = _lock_period(month)
        version = inputs_version(period=period)
        if not force and period.inputs_version == version and period.computed_at:
            return period, False
        _recompute(period)
        _save_figures(period)
    return period, True


def periods_refresh(*, months: list[dt.date] | None = None, force: bool = False) -> int:
    """:func:`period_refresh` of each month (by default: every month with a period, and
    this month). Returns how many months were recomputed (those up to date are not
    counted)."""
    if months is None:
        months = sorted(
            set(BillingPeriod.objects.values_list("month", flat=True)) | {month_of(timezone.now())}
        )
    return sum(_period_refresh(month=month, force=force)[1] for month in months)


def _billing_source_ids() -> list[int]:
    return list(MetricSource.objects.filter(is_billing=True).values_list("pk", flat=True))


def _recompute(period: BillingPeriod, *, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    pricing = pricing_current(period=period)
    source_ids = _billing_source_ids()
    job_kind_names = dict(JobKind.objects.values_list("pk", "name"))
    result = engine.price_month(
        month=period.month,
        pricing=pricing,
        source_ids=source_ids,
        gpu_class_names=dict(GpuClass.objects.values_list("pk", "name")),
        job_kind_names=job_kind_names,
        until=now,
    )
    statements = {s.department_id: s for s in Statement.objects.filter(period=period)}
    finalized = {d for d, s in statements.items() if s.is_finalized}
    adjustments: dict[int, list[Adjustment]] = {}
    for adjustment in (
        Adjustment.objects.filter(applied_to__period=period)
        .select_related("original__period", "applied_to")
        .order_by("created_at", "pk")
    ):
        adjustments.setdefault(adjustment.applied_to.department_id, []).append(adjustment)
    # Every active department has a statement, 0.00 or not; one created after an earlier
    # month was opened gets one there only for what it used (or was adjusted by).
    active = Department.objects.filter(active=True)
    _, end = month_bounds(period.month)
    if now >= end and period.created_at is not None:
        active = active.filter(created_at__lt=period.created_at)
    wanted = set(active.values_list("pk", flat=True)) | result.department_ids | set(adjustments)
    for department_id in sorted(wanted - set(statements)):
        statements[department_id] = Statement.objects.create(
            period=period, department_id=department_id, currency=period.currency
        )
    drafts = {d: s for d, s in statements.items() if d not in finalized}

    StatementLine.objects.filter(period=period).filter(
        Q(statement__isnull=True) | Q(statement__status=StatementStatus.DRAFT)
    ).delete()
    new_lines = []
    jobs_of: dict[int, dict] = {}  # index in new_lines -> the jobs behind that line
    positions: dict[int | None, int] = {}

    def add(line_kwargs: dict, department_id: int | None) -> bool:
        statement = drafts.get(department_id) if department_id is not None else None
        if department_id is not None and statement is None:
            return False  # a finalized statement keeps its lines; see _late_usage
        positions[department_id] = positions.get(department_id, 0) + 1
        new_lines.append(
            StatementLine(
                period=period, statement=statement, position=positions[department_id], **line_kwargs
            )
        )
        return True

    for line in result.lines:
        if add(_line_fields(line), line.department_id) and line.jobs:
            jobs_of[len(new_lines) - 1] = line.jobs
    for department_id, items in adjustments.items():
        for adjustment in items:
            add(
                {
                    "kind": LineKind.ADJUSTMENT,
                    "department_id": department_id,
                    "adjustment": adjustment,
                    "gpu_seconds": adjustment.gpu_seconds,
                    "list_amount": adjustment.amount,
                    "amount": adjustment.amount,
                    "description": (
                        f"{adjustment.get_kind_display()} of the {adjustment.original.period} "
                        f"statement: {adjustment.reason}"
                    )[:300],
                },
                department_id,
            )
    StatementLine.objects.bulk_create(new_lines, batch_size=1000)
    StatementLineJob.objects.bulk_create(
        [
            StatementLineJob(line=new_lines[index], job_id=job_id, gpu_seconds=seconds)
            for index, jobs in jobs_of.items()
            for job_id, seconds in sorted(jobs.items(), key=lambda item: str(item[0]))
        ],
        batch_size=2000,
    )
    WorkerPoolHour.objects.filter(period=period).delete()
    WorkerPoolHour.objects.bulk_create(
        [
            WorkerPoolHour(
                period=period,
                namespace=hour.pool.namespace,
                cluster_id=hour.pool.cluster_id,
                gpu_class_id=hour.gpu_class_id,
                hour_start=hour.hour_start,
                allocation_seconds=hour.allocation_seconds,
                jobs_seconds=hour.jobs_seconds,
                idle_seconds=hour.idle_seconds,
                excess_seconds=hour.excess_seconds,
                tolerance_seconds=hour.tolerance_seconds,
                flagged=hour.flagged,
            )
            for hour in result.pool_hours
        ],
        batch_size=2000,
    )

    totals = {d: (ZERO, ZERO) for d in drafts}
    for line in new_lines:
        if line.statement is not None:
            seconds, amount = totals[line.statement.department_id]
            usage = line.gpu_seconds if line.kind in USED_KINDS else ZERO
            totals[line.statement.department_id] = (seconds + usage, amount + line.amount)
    for department_id, statement in drafts.items():
        statement.gpu_seconds, statement.total = totals[department_id]
        statement.computed_at = now
        statement.currency = period.currency
    Statement.objects.bulk_update(
        list(drafts.values()), ["gpu_seconds", "total", "computed_at", "currency"], batch_size=500
    )
    for field in BillingPeriod.FIGURES:
        if field != "unmarked_jobs":
            setattr(period, field, getattr(result, field))
    slugs = pricing.cluster_slugs
    period.unmarked_jobs = [
        {
            "namespace": unmarked.namespace,
            "cluster": slugs.get(unmarked.cluster_id) if unmarked.cluster_id else None,
            "jobs": unmarked.jobs,
            "gpu_seconds": str(unmarked.gpu_seconds),
        }
        for unmarked in result.unmarked_jobs
    ]
    period.computed_at = now
    class_names = dict(GpuClass.objects.values_list("pk", "name"))
    for department_id in sorted(finalized):
        _late_usage(statements[department_id], source_ids=source_ids, gpu_class_names=class_names)


def _line_fields(line: engine.Line) -> dict:
    return {
        "kind": line.kind,
        "department_id": line.department_id,
        "namespace": line.namespace,
        "cluster_id": line.cluster_id,
        "gpu_class_id": line.gpu_class_id,
        "tier": line.tier,
        "job_kind_id": line.job_kind_id,
        "jobs_count": len(line.jobs),
        "rate_card_id": line.card.id if line.card else None,
        "gpu_seconds": line.gpu_seconds,
        "unit_price": line.unit_price,
        "off_peak_multiplier": line.off_peak_multiplier,
        "department_multiplier": line.department_multiplier,
        "share": line.share,
        "list_amount": line.list_amount,
        "amount": line.amount,
        "description": line.description[:300],
    }


def _late_usage(statement: Statement, *, source_ids, gpu_class_names) -> Adjustment | None:
    """Usage the ledger now holds for a finalized statement's month beyond what the
    statement charged (or less: a correction of the ledger), priced at the prices the
    statement was finalized with (its snapshot), less what earlier adjustments already
    charged. Creates the adjustment on the next open statement when there is a difference."""
    priced = engine.price_month(
        month=statement.period.month,
        pricing=pricing_from_snapshot(statement.pricing, period=statement.period),
        source_ids=source_ids,
        gpu_class_names=gpu_class_names,
    )
    now_lines = [
        line for line in priced.department_lines(statement.department_id) if line.kind in USED_KINDS
    ]
    seconds_now = sum((line.gpu_seconds for line in now_lines), ZERO)
    amount_now = sum((line.amount for line in now_lines), ZERO)
    frozen = statement.lines.filter(kind__in=USED_KINDS).aggregate(
        seconds=Sum("gpu_seconds"), amount=Sum("amount")
    )
    charged = statement.adjustments.filter(kind=AdjustmentKind.LATE_USAGE).aggregate(
        seconds=Sum("gpu_seconds"), amount=Sum("amount")
    )
    seconds_delta = seconds_now - (frozen["seconds"] or ZERO) - (charged["seconds"] or ZERO)
    amount_delta = amount_now - (frozen["amount"] or ZERO) - (charged["amount"] or ZERO)
    if not seconds_delta and not amount_delta:
        return None
    return _adjustment_place(
        original=statement,
        kind=AdjustmentKind.LATE_USAGE,
        amount=amount_delta,
        gpu_seconds=seconds_delta,
        reason=(
            f"{gpu_hours_text(seconds_delta)} GPU-hours metered after the statement was "
            f"finalized (the ledger now holds {gpu_hours_text(seconds_now)}), priced as the "
            "statement was."
        ),
        user=None,
    )


# --- Finalizing -----------------------------------------------------------------------------


def statement_finalize(*, statement: Statement, user=None, now: dt.datetime | None = None):
    """Recompute the statement from the ledger one last time and freeze it, with the
    prices and idle-cost policy it used. ``user`` None: finalized automatically. Refuses a
    month that has not ended and a statement that is already finalized."""
    now = now or timezone.now()
    with transaction.atomic():
        period = _lock_period(statement.period.month)
        statement = Statement.objects.select_for_update().get(pk=statement.pk)
        if statement.is_finalized:
            raise BillingError(
                f"The statement of {statement.department} for {period} was finalized on "
                f"{statement.finalized_at:%Y-%m-%d %H:%M} UTC; it never changes. Corrections "
                "go on the next open statement as adjustments."
            )
        if not month_ended(period.month, now=now):
            raise BillingError(
                f"{period} has not ended yet; its usage is still arriving. Finalize it once "
                "the month is over."
            )
        _recompute(period, now=now)  # the figures it freezes are of this moment
        statement.refresh_from_db()
        statement.status = StatementStatus.FINALIZED
        statement.finalized_at = now
        statement.finalized_by = user
        statement.pricing = pricing_snapshot(pricing_current(period=period))
        statement.save()
        _save_figures(period)
        transaction.on_commit(lambda pk=statement.pk: _mail_later(pk))
    return statement


def _mail_later(statement_id: int) -> None:
    """The finalized statement to its department, and the month's digest to finance
    (:mod:`billing.notifications`); the periodic sweep catches up if this fails."""
    try:
        notifications.statement_finalized(statement_id=statement_id)
    except Exception:
        logger.exception("Starting the mail of statement %s failed", statement_id)


def statements_finalize_due(*, now: dt.datetime | None = None) -> int:
    """Finalize, as the portal, every draft of a month that ended more than
    ``BILLING_FINALIZE_AFTER_H`` hours ago. Returns how many."""
    now = now or timezone.now()
    grace = dt.timedelta(hours=settings.BILLING_FINALIZE_AFTER_H)
    count = 0
    for statement in Statement.objects.filter(status=StatementStatus.DRAFT).select_related(
        "period"
    ):
        if month_bounds(statement.period.month)[1] + grace <= now:
            try:
                statement_finalize(statement=statement, user=None, now=now)
            except BillingError:
                continue  # finalized meanwhile
            count += 1
    return count


# --- Adjustments ----------------------------------------------------------------------------


def next_open_statement(*, department: Department | int, after: dt.date) -> Statement:
    """The department's first draft statement of a month after ``after``, created (with
    its period) when there is none yet."""
    department_id = department if isinstance(department, int) else department.pk
    month = next_month(after)
    while True:
        period = period_get_or_create(month=month)
        statement, _ = Statement.objects.get_or_create(
            period=period, department_id=department_id, defaults={"currency": period.currency}
        )
        if not statement.is_finalized:
            return statement
        month = next_month(month)


def _adjustment_place(
    *, original: Statement, kind: str, amount: Decimal, gpu_seconds: Decimal, reason: str, user
) -> Adjustment:
    target = next_open_statement(department=original.department_id, after=original.period.month)
    adjustment = Adjustment.objects.create(
        original=original,
        applied_to=target,
        kind=kind,
        amount=amount,
        currency=original.currency,
        gpu_seconds=gpu_seconds,
        reason=reason,
        created_by=user,
    )
    if target.period_id != original.period_id:
        transaction.on_commit(lambda: _refresh_later(target.period.month))
    return adjustment


def _refresh_later(month: dt.date) -> None:
    try:
        period_refresh(month=month)
    except Exception:  # the periodic refresh tries again
        logger.exception("Refreshing the statements of %s failed", month)


def adjustment_create(
    *,
    original: Statement,
    amount: Decimal,
    reason: str,
    user,
    gpu_hours: Decimal = ZERO,
) -> Adjustment:
    """A correction of a finalized statement by ``user``, charged (or credited, when
    negative) on the department's next open statement."""
    if not reason.strip():
        raise BillingError("Say why: an adjustment needs a reason.", field="reason")
    if not amount:
        raise BillingError(
            "An adjustment of 0 changes nothing: give the amount to charge "
            "(or, negative, to credit).",
            field="amount",
        )
    with transaction.atomic():
        original = Statement.objects.select_for_update().get(pk=original.pk)
        if not original.is_finalized:
            raise BillingError(
                "This statement is still a draft: it follows the ledger and the prices, so "
                "correct those instead. Adjustments correct finalized statements.",
                field="original",
            )
        if amount != engine.round_money(amount, original.currency):
            raise BillingError(
                f"Give the amount in whole {original.currency} minor units "
                f"(e.g. {engine.round_money(amount, original.currency)}).",
                field="amount",
            )
        adjustment = _adjustment_place(
            original=original,
            kind=AdjustmentKind.CORRECTION,
            amount=amount,
            gpu_seconds=quantities.gpu_seconds(gpu_hours),
            reason=reason.strip(),
            user=user,
        )
    period_refresh(month=adjustment.applied_to.period.month)
    return adjustment
