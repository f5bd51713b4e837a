"""Pricing a month: every GPU-hour of the fleet once, at the card in force, and who pays
for what nobody used.

One basis, with no GPU-hour counted twice or lost:

- **namespace workloads**: the billing sources' ledger (one source per cluster), for every
  namespace that is not a worker pool: charged to the namespace's department, or
  *Unallocated* when nobody owns it;
- **portal jobs**: the GPU time of the jobs the portal's workers ran in a marked worker
  pool, charged to the department that submitted them, per GPU class, tier, job kind and
  the hour the GPU was used (:class:`jobs.models.JobGpuTime`, exact: recorded by the
  worker at every heartbeat, not sampled);
- **pool idle**: per worker pool, GPU class and hour, the pool's allocation (the ledger's
  rows of the pool's namespace) less its jobs' GPU time; it follows the month's idle-cost
  policy like fleet idle, on lines of its own;
- **fleet idle**: per physical GPU class and hour, the capacity less what was used (a MIG
  instance or a time-sliced replica counts as its fraction of its physical GPU).

A pool-hour whose jobs used more than the pool's allocation (beyond the tolerance of one
GPU-minute per GPU of each job attempt in the hour, the most a per-minute sample can miss)
is flagged with the causes to check; the jobs are billed, and the fleet's capacity counts
the larger of the two, so nothing is billed twice.

The ledger and the jobs' hours are read in a few grouped queries, whatever their size.
Everything after that is ``Decimal`` (and ``Fraction`` for the fractions of GPUs); no
float touches an amount.

Reconciliation, by construction and checked by the tests: the fleet's capacity for the
month is valued exactly (every priced GPU-second used at the card that priced it, every
idle one at its class's card) and rounded once; pool idle is its exact value rounded once;
fleet idle is the capacity value less the rounded usage lines and pool idle, so the
departments' usage (before their multipliers), *Unallocated*, pool idle and fleet idle
add up to it to the cent. Shared idle is split by largest remainder, so the shares add up
to the idle amount exactly.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.db.models import Case, DecimalField, IntegerField, Q, Sum, Value, When

from billing.models import IdlePolicy, LineKind, minor_unit, price_text
from core.calendar import month_bounds, month_hours
from departments.models import namespace_label
from jobs.models import JobGpuTime
from metering.models import UsageRecord
from metering.quantities import GPU_SECONDS_KEPT, SECONDS_PER_HOUR, gpu_hours_text
from metering.selectors import UNKNOWN_MODEL

ZERO = Decimal(0)
ONE = Decimal(1)
HOUR = dt.timedelta(hours=1)
# A pool-hour's jobs may exceed its allocation by this much per GPU of each job attempt in
# the hour before it is flagged: what one per-minute sample of the allocation can miss.
POOL_TOLERANCE_GPU_SECONDS = 60
NAMESPACES_NAMED = 3  # a line lists at most this many namespaces by name


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-up to the currency's minor unit (0.005 EUR -> 0.01, 0.5 JPY -> 1)."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def allocate(total: Decimal, weights: list[Decimal], unit: Decimal) -> list[Decimal]:
    """``total`` (a whole number of ``unit``) split in proportion to ``weights`` in whole
    units, the leftover units going to the largest remainders (ties: the earlier weight):
    the parts always add up to ``total`` exactly."""
    if not weights:
        return []
    weight_sum = sum(weights, ZERO)
    if weight_sum <= 0:
        raise ValueError("Weights must add up to more than zero.")
    sign = -1 if total < 0 else 1
    units = int((abs(total) / unit).to_integral_value())
    exact = [Decimal(units) * w / weight_sum for w in weights]
    floors = [int(x.to_integral_value(rounding=ROUND_FLOOR)) for x in exact]
    left = units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [sign * Decimal(n) * unit for n in floors]


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


# --- What prices are in force ---------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    id: int
    gpu_class_id: int
    tier: str
    price: Decimal
    currency: str
    valid_from: dt.datetime
    valid_to: dt.datetime | None

    def covers(self, moment: dt.datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


@dataclass(frozen=True)
class Multiplier:
    department_id: int
    multiplier: Decimal
    valid_from: dt.datetime
    valid_to: dt.datetime | None

    def covers(self, moment: dt.datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)


@dataclass(frozen=True)
class Pool:
    """A worker pool: its namespace, in one cluster or (``cluster_id`` None) in all."""

    namespace: str
    cluster_id: int | None = None

    def matches(self, namespace: str, cluster_id: int | None) -> bool:
        return namespace == self.namespace and self.cluster_id in (None, cluster_id)


@dataclass
class Pricing:
    """The inputs that turn GPU time into money for one month. Built from the database
    for a draft, or from a finalized statement's snapshot."""

    currency: str
    cards: list[Card]
    multipliers: list[Multiplier]
    off_peak: list  # objects with .contains(moment) and .price_multiplier (OffPeakWindow)
    capacity_gpus: dict[int, int]  # GPU class id -> GPUs
    # namespace label (name, or cluster-slug/name for a claim in one cluster) -> tier
    namespace_tiers: dict[str, str]
    idle_policy: str = IdlePolicy.ABSORBED
    idle_department_id: int | None = None
    cluster_slugs: dict[int, str] = field(default_factory=dict)  # cluster id -> slug
    worker_pools: list[Pool] = field(default_factory=list)
    # A class that is a fraction of a GPU: class id -> (physical class id, fraction)
    gpu_fractions: dict[int, tuple[int, Fraction]] = field(default_factory=dict)

    def namespace_tier(self, namespace: str, cluster_id: int | None) -> str:
        """The tier of ``namespace`` in the cluster: its claim there, else its claim in
        every cluster, else none."""
        slug = self.cluster_slugs.get(cluster_id) if cluster_id is not None else None
        if slug is not None and f"{slug}/{namespace}" in self.namespace_tiers:
            return self.namespace_tiers[f"{slug}/{namespace}"]
        return self.namespace_tiers.get(namespace, "")

    def card(self, gpu_class_id: int, tier: str, moment: dt.datetime) -> Card | None:
        """The tier's own card when it has one in force, else the class's card for every
        tier."""
        fallback = None
        for card in self.cards:
            if card.gpu_class_id != gpu_class_id or not card.covers(moment):
                continue
            if tier and card.tier == tier:
                return card
            if not card.tier:
                fallback = card
        return fallback

    def department_multiplier(self, department_id: int, moment: dt.datetime) -> Decimal:
        for entry in self.multipliers:
            if entry.department_id == department_id and entry.covers(moment):
                return entry.multiplier
        return ONE

    def off_peak_multiplier(self, hour_start: dt.datetime) -> Decimal:
        """The lowest multiplier of the off-peak windows the hour starts in; 1 outside."""
        inside = [w.price_multiplier for w in self.off_peak if w.contains(hour_start)]
        return min(inside) if inside else ONE

    def pool_of(self, namespace: str, cluster_id: int | None) -> Pool | None:
        """The worker pool that ``namespace`` of the cluster is, if any (a pool of that
        cluster before one of every cluster)."""
        matching = [pool for pool in self.worker_pools if pool.matches(namespace, cluster_id)]
        return min(matching, key=lambda pool: pool.cluster_id is None) if matching else None

    def physical(self, gpu_class_id: int) -> tuple[int, Fraction]:
        """The physical class a class's GPU time counts in, and the share of a GPU one
        instance of it holds (1 for whole GPUs)."""
        return self.gpu_fractions.get(gpu_class_id, (gpu_class_id, Fraction(1)))

    def pools_filter(self) -> Q:
        return pools_filter(self.worker_pools)


def pools_filter(pools: list[Pool], *, namespace_field: str = "namespace") -> Q:
    """Rows (of the ledger, or of jobs' GPU time with ``pool_namespace``) of the worker
    pools' namespaces."""
    rows = Q(pk__in=[])
    for pool in pools:
        rows |= Q(**{namespace_field: pool.namespace}) & (
            Q(cluster_id=pool.cluster_id) if pool.cluster_id is not None else Q()
        )
    return rows


# --- The month's lines ----------------------------------------------------------------------


@dataclass
class Line:
    kind: str
    department_id: int | None
    gpu_class_id: int | None
    gpu_class_name: str
    namespace: str = ""
    cluster_id: int | None = None
    cluster_slug: str = ""
    tier: str = ""
    card: Card | None = None
    off_peak_multiplier: Decimal = ONE
    department_multiplier: Decimal = ONE
    gpu_seconds: Decimal = ZERO
    exact_list: Decimal = ZERO  # GPU-hours x price x off-peak multiplier, unrounded
    list_amount: Decimal = ZERO
    amount: Decimal = ZERO
    share: Decimal | None = None
    description: str = ""
    job_kind_id: int | None = None
    job_kind_name: str = ""
    jobs: dict = field(default_factory=dict)  # job id -> GPU-seconds on this line
    namespaces: set = field(default_factory=set)  # the workloads' namespaces

    @property
    def unit_price(self) -> Decimal | None:
        return self.card.price if self.card else None


@dataclass
class PoolHour:
    """One worker pool's GPU class in one hour: what its pods were allocated, what its
    jobs used, the idle rest (or the excess of the jobs), and whether that excess is
    beyond what sampling explains. ``allocation = jobs + idle - excess``."""

    pool: Pool
    gpu_class_id: int | None
    hour_start: dt.datetime
    allocation_seconds: Decimal = ZERO
    jobs_seconds: Decimal = ZERO
    job_gpus: int = 0  # GPUs of the job attempts in the hour, for the tolerance
    jobs_by_department: dict = field(default_factory=dict)  # department id -> GPU-seconds

    @property
    def idle_seconds(self) -> Decimal:
        return max(ZERO, self.allocation_seconds - self.jobs_seconds)

    @property
    def excess_seconds(self) -> Decimal:
        return max(ZERO, self.jobs_seconds - self.allocation_seconds)

    @property
    def tolerance_seconds(self) -> Decimal:
        return Decimal(POOL_TOLERANCE_GPU_SECONDS * self.job_gpus)

    @property
    def flagged(self) -> bool:
        return self.excess_seconds > self.tolerance_seconds

    @property
    def used_seconds(self) -> Decimal:
        """What the fleet's capacity counts as used: never less than the jobs ran."""
        return max(self.allocation_seconds, self.jobs_seconds)


@dataclass
class UnmarkedJobs:
    """Portal jobs whose workers ran in a namespace that is not a marked worker pool:
    their GPU time is billed as that namespace's usage, not to their departments."""

    namespace: str
    cluster_id: int | None
    jobs: int
    gpu_seconds: Decimal


@dataclass
class PeriodResult:
    month: dt.date
    currency: str
    start: dt.datetime
    end: dt.datetime
    lines: list[Line] = field(default_factory=list)
    capacity_gpu_seconds: Decimal = ZERO
    capacity_amount: Decimal = ZERO
    unallocated_gpu_seconds: Decimal = ZERO
    unallocated_amount: Decimal = ZERO
    pool_idle_gpu_seconds: Decimal = ZERO
    pool_idle_amount: Decimal = ZERO
    idle_gpu_seconds: Decimal = ZERO
    idle_amount: Decimal = ZERO
    unpriced_gpu_seconds: Decimal = ZERO
    pool_hours: list[PoolHour] = field(default_factory=list)
    unmarked_jobs: list[UnmarkedJobs] = field(default_factory=list)

    def department_lines(self, department_id: int) -> list[Line]:
        return [line for line in self.lines if line.department_id == department_id]

    @property
    def department_ids(self) -> set[int]:
        return {line.department_id for line in self.lines if line.department_id is not None}


def _boundaries(pricing: Pricing, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Moments inside the month at which a card or a department multiplier starts or ends."""
    moments = set()
    for entry in [*pricing.cards, *pricing.multipliers]:
        for moment in (entry.valid_from, entry.valid_to):
            if moment is not None and start < moment < end:
                moments.add(moment)
    return sorted(moments)


def _segment_expression(boundaries: list[dt.datetime]):
    if not boundaries:
        return Value(0, output_field=IntegerField())
    return Case(
        *[When(hour_start__lt=moment, then=Value(i)) for i, moment in enumerate(boundaries)],
        default=Value(len(boundaries)),
        output_field=IntegerField(),
    )


def _off_peak_expression(by_multiplier: dict[Decimal, list[dt.datetime]]):
    if not by_multiplier:
        return Value(ONE, output_field=DecimalField(max_digits=6, decimal_places=3))
    return Case(
        *[
            When(hour_start__in=hours, then=Value(multiplier))
            for multiplier, hours in sorted(by_multiplier.items())
        ],
        default=Value(ONE),
        output_field=DecimalField(max_digits=6, decimal_places=3),
    )


def _price_parts(line: Line) -> list[str]:
    parts = [f"× {price_text(line.card.price)} {line.card.currency}"]
    if line.off_peak_multiplier != ONE:
        parts.append(f"× {line.off_peak_multiplier.normalize():f} off-peak")
    if line.department_multiplier != ONE:
        parts.append(f"× {line.department_multiplier.normalize():f} department multiplier")
    return parts


def _namespace_list(line: Line) -> str:
    names = sorted(namespace_label(ns, line.cluster_slug) for ns in line.namespaces)
    shown = ", ".join(names[:NAMESPACES_NAMED])
    if len(names) > NAMESPACES_NAMED:
        shown += f" and {len(names) - NAMESPACES_NAMED} more"
    return shown


def _describe(line: Line) -> str:
    where = ""
    if line.kind == LineKind.UNALLOCATED:
        where = f"namespace {namespace_label(line.namespace, line.cluster_slug)}, "
    tier = f" ({line.tier})" if line.tier else ""
    cluster = f" in {line.cluster_slug}" if line.cluster_slug and not where else ""
    hours = (
        f"{where}{gpu_hours_text(line.gpu_seconds)} GPU-hours of {line.gpu_class_name}"
        f"{tier}{cluster}"
    )
    if line.kind == LineKind.JOBS:
        what = f"portal jobs: {line.job_kind_name} × {len(line.jobs)}"
    elif line.kind == LineKind.USAGE and line.namespaces:
        what = f"namespace workloads: {_namespace_list(line)}"
    else:
        what = ""
    if line.card is None:
        why = "an unknown GPU model" if line.gpu_class_id is None else "no rate card in force then"
        priced = f"{hours}: not priced ({why})"
    else:
        priced = " ".join([hours, *_price_parts(line)])
    return f"{priced}, {what}" if what else priced


# --- Reading the month ----------------------------------------------------------------------


@dataclass
class _Month:
    pricing: Pricing
    start: dt.datetime
    end: dt.datetime
    hours: list[dt.datetime]
    off_peak_of: dict[dt.datetime, Decimal]
    by_multiplier: dict[Decimal, list[dt.datetime]]
    segment_start: list[dt.datetime]
    boundaries: list[dt.datetime]

    def annotate(self, queryset):
        return queryset.annotate(
            segment=_segment_expression(self.boundaries),
            off_peak=_off_peak_expression(self.by_multiplier),
        )


def _month(month: dt.date, pricing: Pricing) -> _Month:
    start, end = month_bounds(month)
    hours = month_hours(month)
    off_peak_of = {hour: pricing.off_peak_multiplier(hour) for hour in hours}
    by_multiplier: dict[Decimal, list[dt.datetime]] = defaultdict(list)
    for hour, multiplier in off_peak_of.items():
        if multiplier != ONE:
            by_multiplier[multiplier].append(hour)
    boundaries = _boundaries(pricing, start, end)
    return _Month(
        pricing=pricing,
        start=start,
        end=end,
        hours=hours,
        off_peak_of=off_peak_of,
        by_multiplier=by_multiplier,
        segment_start=[start, *boundaries],
        boundaries=boundaries,
    )


def _line_for(lines: dict, key: tuple, **fields) -> Line:
    line = lines.get(key)
    if line is None:
        line = lines[key] = Line(**fields)
    return line


def _workload_lines(m: _Month, records, lines: dict, gpu_class_names: dict) -> None:
    """Usage of the namespaces that are not worker pools: a line per department (or
    *Unallocated* namespace), cluster, class, tier card, card, off-peak and multiplier."""
    pricing = m.pricing
    grouped = (
        m.annotate(records)
        .values("department_id", "namespace", "cluster_id", "gpu_class_id", "segment", "off_peak")
        .annotate(gpu_seconds=Sum("quantity"))
        .order_by()
    )
    for row in grouped:
        seconds = row["gpu_seconds"] or ZERO
        if not seconds:
            continue
        department_id, class_id = row["department_id"], row["gpu_class_id"]
        cluster_id = row["cluster_id"]
        moment = m.segment_start[row["segment"]]
        tier = pricing.namespace_tier(row["namespace"], cluster_id)
        card = pricing.card(class_id, tier, moment) if class_id is not None else None
        off_peak = row["off_peak"] if card else ONE
        if department_id is None:
            kind, namespace, multiplier = LineKind.UNALLOCATED, row["namespace"], ONE
        else:
            kind, namespace = LineKind.USAGE, ""
            multiplier = pricing.department_multiplier(department_id, moment) if card else ONE
        line_tier = tier if card is not None and card.tier else ""
        key = (kind, department_id, namespace, cluster_id, class_id, line_tier, card, off_peak)
        line = _line_for(
            lines,
            (*key, multiplier),
            kind=kind,
            department_id=department_id,
            gpu_class_id=class_id,
            gpu_class_name=gpu_class_names.get(class_id, UNKNOWN_MODEL),
            namespace=namespace,
            cluster_id=cluster_id,
            cluster_slug=pricing.cluster_slugs.get(cluster_id, "") if cluster_id else "",
            tier=line_tier,
            card=card,
            off_peak_multiplier=off_peak,
            department_multiplier=multiplier,
        )
        line.gpu_seconds += seconds
        if kind == LineKind.USAGE:
            line.namespaces.add(row["namespace"])


def _job_lines(
    m: _Month, job_time, lines: dict, gpu_class_names: dict, kind_names: dict
) -> list[UnmarkedJobs]:
    """Portal jobs that ran in a marked worker pool: a line per department, cluster,
    class, tier, job kind, card, off-peak and multiplier, with the jobs behind it. Jobs of
    workers in a namespace that is no pool are returned, unbilled (their time is that
    namespace's usage)."""
    pricing = m.pricing
    grouped = (
        m.annotate(job_time)
        .values(
            "job_id",
            "department_id",
            "gpu_class_id",
            "tier",
            "kind_id",
            "pool_namespace",
            "cluster_id",
            "segment",
            "off_peak",
        )
        .annotate(gpu_seconds=Sum("gpu_seconds"))
        .order_by()
    )
    unmarked: dict[tuple, list] = defaultdict(lambda: [set(), ZERO])
    for row in grouped:
        seconds = row["gpu_seconds"] or ZERO
        if not seconds:
            continue
        cluster_id = row["cluster_id"]
        if pricing.pool_of(row["pool_namespace"], cluster_id) is None:
            entry = unmarked[(row["pool_namespace"], cluster_id)]
            entry[0].add(row["job_id"])
            entry[1] += seconds
            continue
        department_id, class_id, tier = row["department_id"], row["gpu_class_id"], row["tier"]
        moment = m.segment_start[row["segment"]]
        card = pricing.card(class_id, tier, moment)
        off_peak = row["off_peak"] if card else ONE
        multiplier = pricing.department_multiplier(department_id, moment) if card else ONE
        key = (
            LineKind.JOBS,
            department_id,
            row["kind_id"],
            cluster_id,
            class_id,
            tier,
            card,
            off_peak,
            multiplier,
        )
        line = _line_for(
            lines,
            key,
            kind=LineKind.JOBS,
            department_id=department_id,
            gpu_class_id=class_id,
            gpu_class_name=gpu_class_names.get(class_id, UNKNOWN_MODEL),
            cluster_id=cluster_id,
            cluster_slug=pricing.cluster_slugs.get(cluster_id, "") if cluster_id else "",
            tier=tier,
            card=card,
            off_peak_multiplier=off_peak,
            department_multiplier=multiplier,
            job_kind_id=row["kind_id"],
            job_kind_name=kind_names.get(row["kind_id"], "job"),
        )
        line.gpu_seconds += seconds
        line.jobs[row["job_id"]] = line.jobs.get(row["job_id"], ZERO) + seconds
    return [
        UnmarkedJobs(namespace=ns, cluster_id=cluster, jobs=len(jobs), gpu_seconds=seconds)
        for (ns, cluster), (jobs, seconds) in sorted(unmarked.items(), key=repr)
    ]


def _pool_hours(m: _Month, pool_records, job_time) -> list[PoolHour]:
    """Per worker pool, class and hour: allocation, jobs' GPU time and the jobs' GPUs."""
    pricing = m.pricing
    by_key: dict[tuple, PoolHour] = {}

    def entry(pool: Pool, class_id, hour) -> PoolHour:
        key = (pool, class_id, hour)
        if key not in by_key:
            by_key[key] = PoolHour(pool=pool, gpu_class_id=class_id, hour_start=hour)
        return by_key[key]

    for row in (
        pool_records.values("namespace", "cluster_id", "gpu_class_id", "hour_start")
        .annotate(gpu_seconds=Sum("quantity"))
        .order_by()
    ):
        pool = pricing.pool_of(row["namespace"], row["cluster_id"])
        if pool is not None and row["gpu_seconds"]:
            hour = entry(pool, row["gpu_class_id"], row["hour_start"])
            hour.allocation_seconds += row["gpu_seconds"]
    for row in (
        job_time.values(
            "pool_namespace", "cluster_id", "gpu_class_id", "hour_start", "department_id"
        )
        .annotate(gpu_seconds=Sum("gpu_seconds"), gpus=Sum("gpus"))
        .order_by()
    ):
        pool = pricing.pool_of(row["pool_namespace"], row["cluster_id"])
        if pool is not None and row["gpu_seconds"]:
            hour = entry(pool, row["gpu_class_id"], row["hour_start"])
            hour.jobs_seconds += row["gpu_seconds"]
            hour.job_gpus += row["gpus"]
            department = row["department_id"]
            hour.jobs_by_department[department] = (
                hour.jobs_by_department.get(department, ZERO) + row["gpu_seconds"]
            )
    return sorted(
        by_key.values(),
        key=lambda h: (h.pool.namespace, h.pool.cluster_id or 0, h.gpu_class_id or 0, h.hour_start),
    )


def price_month(
    *,
    month: dt.date,
    pricing: Pricing,
    source_ids: list[int],
    gpu_class_names: dict[int, str],
    job_kind_names: dict[int, str] | None = None,
    until: dt.datetime | None = None,
) -> PeriodResult:
    """Price the portal month that starts on ``month``: the billing sources' ledger and
    the portal jobs' GPU time.

    Returns every line (per department: namespace workloads and portal jobs per GPU class,
    tier, card, off-peak and department multiplier; *Unallocated* usage per namespace;
    pool idle and fleet idle as the policy says), the month's reconciliation figures and
    its pool-hours. Fleet capacity counts only the hours that began before ``until`` (a
    running month's rest has not stood idle yet)."""
    m = _month(month, pricing)
    result = PeriodResult(month=month, currency=pricing.currency, start=m.start, end=m.end)
    records = UsageRecord.objects.filter(
        source_id__in=source_ids, hour_start__gte=m.start, hour_start__lt=m.end
    )
    pools = pricing.pools_filter()
    workloads, pool_records = records.exclude(pools), records.filter(pools)
    job_time = JobGpuTime.objects.filter(hour_start__gte=m.start, hour_start__lt=m.end)

    lines: dict[tuple, Line] = {}
    _workload_lines(m, workloads, lines, gpu_class_names)
    result.unmarked_jobs = _job_lines(m, job_time, lines, gpu_class_names, job_kind_names or {})
    result.pool_hours = _pool_hours(m, pool_records, job_time)

    exact_usage_value = ZERO
    for line in lines.values():
        if line.card is None:
            result.unpriced_gpu_seconds += line.gpu_seconds
        else:
            line.exact_list = (
                line.gpu_seconds * line.card.price * line.off_peak_multiplier / SECONDS_PER_HOUR
            )
            line.list_amount = round_money(line.exact_list, pricing.currency)
            line.amount = round_money(
                line.exact_list * line.department_multiplier, pricing.currency
            )
            exact_usage_value += line.exact_list
        line.description = _describe(line)
        if line.kind == LineKind.UNALLOCATED:
            result.unallocated_gpu_seconds += line.gpu_seconds
            result.unallocated_amount += line.list_amount

    # Pool idle: per pool, class and hour, the allocation its jobs did not use.
    pool_idle_exact: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    pool_idle_seconds: dict[tuple, Decimal] = defaultdict(lambda: ZERO)
    for hour in result.pool_hours:
        idle = hour.idle_seconds
        if not idle:
            continue
        card = (
            pricing.card(hour.gpu_class_id, "", hour.hour_start)
            if hour.gpu_class_id is not None
            else None
        )
        if card is None:
            result.unpriced_gpu_seconds += idle
            continue
        key = (hour.pool, hour.gpu_class_id)
        pool_idle_seconds[key] += idle
        pool_idle_exact[key] += (
            idle * card.price * m.off_peak_of.get(hour.hour_start, ONE) / SECONDS_PER_HOUR
        )
    result.pool_idle_gpu_seconds = sum(pool_idle_seconds.values(), ZERO)
    result.pool_idle_amount = round_money(sum(pool_idle_exact.values(), ZERO), pricing.currency)

    # Fleet idle: per physical class and hour, the capacity nothing used (never below 0).
    used: dict[tuple, Fraction] = defaultdict(Fraction)
    for row in (
        workloads.filter(gpu_class_id__isnull=False)
        .values("gpu_class_id", "hour_start")
        .annotate(gpu_seconds=Sum("quantity"))
        .order_by()
    ):
        physical, fraction = pricing.physical(row["gpu_class_id"])
        used[(physical, row["hour_start"])] += Fraction(row["gpu_seconds"] or 0) * fraction
    for hour in result.pool_hours:
        if hour.gpu_class_id is not None:
            physical, fraction = pricing.physical(hour.gpu_class_id)
            used[(physical, hour.hour_start)] += Fraction(hour.used_seconds) * fraction
    idle_exact_by_class: dict[int, Decimal] = defaultdict(lambda: ZERO)
    idle_seconds_by_class: dict[int, Fraction] = defaultdict(Fraction)
    capacity_seconds_total = Fraction(0)
    begun = m.hours if until is None else [hour for hour in m.hours if hour < until]
    for class_id, capacity in sorted(pricing.capacity_gpus.items()):
        if not capacity:
            continue  # a fraction of a GPU: counted in its physical class
        capacity_seconds = Fraction(capacity) * 3600
        for hour in begun:
            card = pricing.card(class_id, "", hour)
            if card is None:
                continue  # capacity that no card prices is not valued
            hour_used = used.get((class_id, hour), Fraction(0))
            capacity_seconds_total += max(capacity_seconds, hour_used)
            idle = capacity_seconds - hour_used
            if idle > 0:
                idle_seconds_by_class[class_id] += idle
                idle_exact_by_class[class_id] += (
                    _decimal(idle) * card.price * m.off_peak_of[hour] / SECONDS_PER_HOUR
                )
    result.capacity_gpu_seconds = _decimal(capacity_seconds_total).quantize(GPU_SECONDS_KEPT)
    result.idle_gpu_seconds = _decimal(sum(idle_seconds_by_class.values(), Fraction(0))).quantize(
        GPU_SECONDS_KEPT
    )
    result.capacity_amount = round_money(
        exact_usage_value
        + sum(pool_idle_exact.values(), ZERO)
        + sum(idle_exact_by_class.values(), ZERO),
        pricing.currency,
    )
    priced_usage_lines = [line for line in lines.values() if line.card is not None]
    # Fleet idle is what the capacity is worth less what was used and what pools left
    # idle: rounding never makes a cent appear or vanish between them.
    result.idle_amount = (
        result.capacity_amount
        - sum((line.list_amount for line in priced_usage_lines), ZERO)
        - result.pool_idle_amount
    )
    result.lines = sorted(
        lines.values(),
        key=lambda line: (
            line.department_id or 0,
            line.kind,
            line.namespace,
            line.cluster_slug,
            line.gpu_class_name == UNKNOWN_MODEL,
            line.gpu_class_name,
            line.tier,
            line.job_kind_name,
            line.card.valid_from if line.card else m.start,
            -line.off_peak_multiplier,
        ),
    )
    unit = minor_unit(pricing.currency)
    result.lines.extend(
        _pool_idle_lines(
            result,
            pricing=pricing,
            unit=unit,
            idle_exact=pool_idle_exact,
            idle_seconds=pool_idle_seconds,
            gpu_class_names=gpu_class_names,
        )
    )
    result.lines.extend(
        _idle_lines(
            result,
            pricing=pricing,
            unit=unit,
            idle_seconds_by_class={
                c: _decimal(s).quantize(GPU_SECONDS_KEPT) for c, s in idle_seconds_by_class.items()
            },
            idle_exact_by_class=idle_exact_by_class,
            gpu_class_names=gpu_class_names,
        )
    )
    return result


def _physical_seconds(pricing: Pricing, line: Line) -> Decimal:
    """A line's GPU time as physical GPU-seconds (a MIG instance counts as its fraction)."""
    if line.gpu_class_id is None:
        return line.gpu_seconds
    _, fraction = pricing.physical(line.gpu_class_id)
    return line.gpu_seconds * _decimal(fraction)


def _pool_text(pool: Pool, pricing: Pricing) -> str:
    slug = pricing.cluster_slugs.get(pool.cluster_id) if pool.cluster_id else None
    return namespace_label(pool.namespace, slug)


def _pool_idle_lines(
    result: PeriodResult,
    *,
    pricing: Pricing,
    unit: Decimal,
    idle_exact: dict[tuple, Decimal],
    idle_seconds: dict[tuple, Decimal],
    gpu_class_names: dict[int, str],
) -> list[Line]:
    """Pool idle as the policy says: one line per pool and class, absorbed by IT or
    charged to one department; or, shared, each pool's idle split among the departments
    whose jobs ran in it, in proportion to their jobs' GPU time there (absorbed by IT for
    a pool no job ran in)."""
    keys = sorted(
        idle_exact,
        key=lambda k: (k[0].namespace, k[0].cluster_id or 0, gpu_class_names.get(k[1], "")),
    )
    if not keys or not result.pool_idle_amount:
        return []
    amounts = dict(
        zip(
            keys,
            allocate(result.pool_idle_amount, [idle_exact[k] for k in keys], unit),
            strict=True,
        )
    )
    policy = pricing.idle_policy
    lines = []
    if policy == IdlePolicy.SHARED:
        by_pool: dict[Pool, list[tuple]] = defaultdict(list)
        for key in keys:
            by_pool[key[0]].append(key)
        jobs_in_pool = _jobs_seconds_by_pool(result)
        for pool, pool_keys in by_pool.items():
            amount = sum((amounts[k] for k in pool_keys), ZERO)
            seconds = sum((idle_seconds[k] for k in pool_keys), ZERO)
            users = jobs_in_pool.get(pool, {})
            if not users:
                lines.append(
                    _pool_line(pricing, pool, None, amount, seconds, None, gpu_class_names)
                )
                continue
            payers = sorted(users)
            weights = [users[d] for d in payers]
            total = sum(weights, ZERO)
            for department_id, weight, part in zip(
                payers, weights, allocate(amount, weights, unit), strict=True
            ):
                lines.append(
                    Line(
                        kind=LineKind.POOL_IDLE,
                        department_id=department_id,
                        gpu_class_id=None,
                        gpu_class_name="",
                        namespace=pool.namespace,
                        cluster_id=pool.cluster_id,
                        gpu_seconds=(seconds * weight / total).quantize(GPU_SECONDS_KEPT),
                        share=(weight / total).quantize(Decimal("1e-10")),
                        list_amount=part,
                        amount=part,
                        description=(
                            f"Share of idle in worker pool {_pool_text(pool, pricing)}: "
                            f"{gpu_hours_text(weight)} of {gpu_hours_text(total)} GPU-hours its "
                            f"jobs used ({(weight * 100 / total).quantize(Decimal('0.01'))} %)"
                        ),
                    )
                )
        return lines
    payer = pricing.idle_department_id if policy == IdlePolicy.CHARGED else None
    return [
        _pool_line(pricing, key[0], key[1], amounts[key], idle_seconds[key], payer, gpu_class_names)
        for key in keys
    ]


def _jobs_seconds_by_pool(result: PeriodResult) -> dict:
    """Per worker pool: each department's jobs' GPU time in it this month."""
    by_pool: dict[Pool, dict[int, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    for hour in result.pool_hours:
        for department_id, seconds in hour.jobs_by_department.items():
            by_pool[hour.pool][department_id] += seconds
    return {pool: dict(users) for pool, users in by_pool.items()}


def _pool_line(pricing, pool, class_id, amount, seconds, payer, gpu_class_names) -> Line:
    who = "charged to this department" if payer is not None else "absorbed by IT"
    where = f"worker pool {_pool_text(pool, pricing)}"
    what = f", {gpu_class_names.get(class_id, '')}" if class_id is not None else ""
    return Line(
        kind=LineKind.POOL_IDLE,
        department_id=payer,
        gpu_class_id=class_id,
        gpu_class_name=gpu_class_names.get(class_id, ""),
        namespace=pool.namespace,
        cluster_id=pool.cluster_id,
        gpu_seconds=seconds,
        list_amount=amount,
        amount=amount,
        description=f"Idle in {where}{what}: {gpu_hours_text(seconds)} GPU-hours, {who}",
    )


def _idle_lines(
    result: PeriodResult,
    *,
    pricing: Pricing,
    unit: Decimal,
    idle_seconds_by_class: dict[int, Decimal],
    idle_exact_by_class: dict[int, Decimal],
    gpu_class_names: dict[int, str],
) -> list[Line]:
    if not result.idle_amount and not result.idle_gpu_seconds:
        return []
    policy = pricing.idle_policy
    usage_seconds: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for line in result.lines:
        if line.kind in (LineKind.USAGE, LineKind.JOBS) and line.card is not None:
            usage_seconds[line.department_id] += _physical_seconds(pricing, line)
    if policy == IdlePolicy.SHARED and usage_seconds:
        payers = sorted(usage_seconds)
        weights = [usage_seconds[d] for d in payers]
        total = sum(weights, ZERO)
        parts = allocate(result.idle_amount, weights, unit)
        return [
            Line(
                kind=LineKind.IDLE,
                department_id=department_id,
                gpu_class_id=None,
                gpu_class_name="",
                gpu_seconds=(result.idle_gpu_seconds * weight / total).quantize(GPU_SECONDS_KEPT),
                share=(weight / total).quantize(Decimal("1e-10")),
                list_amount=part,
                amount=part,
                description=(
                    f"Share of idle capacity: {gpu_hours_text(weight)} of "
                    f"{gpu_hours_text(total)} GPU-hours used of the fleet "
                    f"({(weight * 100 / total).quantize(Decimal('0.01'))} %)"
                ),
            )
            for department_id, weight, part in zip(payers, weights, parts, strict=True)
        ]
    payer = pricing.idle_department_id if policy == IdlePolicy.CHARGED else None
    classes = sorted(idle_exact_by_class, key=lambda c: gpu_class_names.get(c, ""))
    weights = [idle_exact_by_class[c] for c in classes]
    if sum(weights, ZERO) > 0:
        parts = allocate(result.idle_amount, weights, unit)
    else:
        classes, parts = [None], [result.idle_amount]
    who = {
        IdlePolicy.CHARGED: "charged to this department",
        IdlePolicy.SHARED: "absorbed by IT (no department used the fleet)",
    }.get(policy, "absorbed by IT")
    return [
        Line(
            kind=LineKind.IDLE,
            department_id=payer,
            gpu_class_id=class_id,
            gpu_class_name=gpu_class_names.get(class_id, ""),
            gpu_seconds=idle_seconds_by_class.get(class_id, ZERO),
            list_amount=part,
            amount=part,
            description=(
                f"Idle {gpu_class_names.get(class_id, 'capacity')}: "
                f"{gpu_hours_text(idle_seconds_by_class.get(class_id, ZERO))} GPU-hours, {who}"
            ),
        )
        for class_id, part in zip(classes, parts, strict=True)
    ]
