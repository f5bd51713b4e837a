"""Pricing a month of the ledger: which card, which multipliers, how much, and who pays
for idle capacity.

The ledger is read in two grouped queries, whatever its size: GPU-hours per department,
namespace, GPU class and pricing segment (a stretch of hours in which the cards and the
department multipliers do not change, split into peak and each off-peak multiplier), and
GPU-hours per GPU class and hour (for idle capacity). Everything after that is ``Decimal``
arithmetic in Python; no float touches an amount.

Reconciliation, by construction and checked by the tests: the fleet's capacity for the
month is valued exactly (every priced GPU-hour used at the card that priced it, every idle
GPU-hour at the class's card) and rounded once; idle capacity is that value less the rounded
usage lines, so the departments' usage (before their multipliers), *Unallocated* and idle
add up to it to the cent. Shared idle capacity is split by largest remainder, so the shares
add up to the idle amount exactly.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.db.models import Case, DecimalField, IntegerField, Sum, Value, When

from billing.models import IdlePolicy, LineKind, minor_unit, price_text
from metering.models import UsageRecord
from metering.quantities import GPU_SECONDS_KEPT, SECONDS_PER_HOUR, gpu_hours_text
from metering.selectors import UNKNOWN_MODEL, month_bounds

ZERO = Decimal(0)
ONE = Decimal(1)
HOUR = dt.timedelta(hours=1)


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


@dataclass
class Pricing:
    """The inputs that turn GPU-hours into money for one month. Built from the database
    for a draft, or from a finalized statement's snapshot."""

    currency: str
    cards: list[Card]
    multipliers: list[Multiplier]
    off_peak: list  # objects with .contains(moment) and .price_multiplier (OffPeakWindow)
    capacity_gpus: dict[int, int]  # GPU class id -> GPUs
    namespace_tiers: dict[str, str]  # namespace -> tier ("" when it has none)
    idle_policy: str = IdlePolicy.ABSORBED
    idle_department_id: int | None = None

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


# --- The month's lines ----------------------------------------------------------------------


@dataclass
class Line:
    kind: str
    department_id: int | None
    gpu_class_id: int | None
    gpu_class_name: str
    namespace: str = ""
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

    @property
    def unit_price(self) -> Decimal | None:
        return self.card.price if self.card else None


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
    idle_gpu_seconds: Decimal = ZERO
    idle_amount: Decimal = ZERO
    unpriced_gpu_seconds: Decimal = ZERO

    def department_lines(self, department_id: int) -> list[Line]:
        return [line for line in self.lines if line.department_id == department_id]

    @property
    def department_ids(self) -> set[int]:
        return {line.department_id for line in self.lines if line.department_id is not None}


def month_hours(month: dt.date) -> list[dt.datetime]:
    """The UTC hour starts of the portal month: 743 or 745 of them when the clocks change."""
    start, end = month_bounds(month)
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


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


def _describe(line: Line) -> str:
    where = f"namespace {line.namespace}, " if line.kind == LineKind.UNALLOCATED else ""
    tier = f" ({line.tier})" if line.tier else ""
    hours = f"{gpu_hours_text(line.gpu_seconds)} GPU-hours of {line.gpu_class_name}{tier}"
    if line.card is None:
        why = "an unknown GPU model" if line.gpu_class_id is None else "no rate card in force then"
        return f"{where}{hours}: not priced ({why})"
    parts = [f"{where}{hours} × {price_text(line.card.price)} {line.card.currency}"]
    if line.off_peak_multiplier != ONE:
        parts.append(f"× {line.off_peak_multiplier.normalize():f} off-peak")
    if line.department_multiplier != ONE:
        parts.append(f"× {line.department_multiplier.normalize():f} department multiplier")
    return " ".join(parts)


def price_month(
    *,
    month: dt.date,
    pricing: Pricing,
    source_id: int | None,
    gpu_class_names: dict[int, str],
    until: dt.datetime | None = None,
) -> PeriodResult:
    """Price the billing source's ledger for the portal month that starts on ``month``.

    Returns every line (per department: usage per GPU class, tier, card, off-peak and
    department multiplier; *Unallocated* usage per namespace; idle capacity as the policy
    says) and the month's reconciliation figures. Capacity counts only the hours that
    began before ``until`` (a running month's rest has not stood idle yet)."""
    start, end = month_bounds(month)
    result = PeriodResult(month=month, currency=pricing.currency, start=start, end=end)
    hours = month_hours(month)
    off_peak_of = {hour: pricing.off_peak_multiplier(hour) for hour in hours}
    by_multiplier: dict[Decimal, list[dt.datetime]] = defaultdict(list)
    for hour, multiplier in off_peak_of.items():
        if multiplier != ONE:
            by_multiplier[multiplier].append(hour)
    boundaries = _boundaries(pricing, start, end)
    segment_start = [start, *boundaries]

    records = UsageRecord.objects.filter(
        source_id=source_id, hour_start__gte=start, hour_start__lt=end
    )
    grouped = (
        records.annotate(
            segment=_segment_expression(boundaries), off_peak=_off_peak_expression(by_multiplier)
        )
        .values("department_id", "namespace", "gpu_class_id", "segment", "off_peak")
        .annotate(gpu_seconds=Sum("quantity"))
        .order_by()
    )

    lines: dict[tuple, Line] = {}
    unit = minor_unit(pricing.currency)
    exact_usage_value = ZERO
    for row in grouped:
        seconds_used = row["gpu_seconds"] or ZERO
        if not seconds_used:
            continue
        department_id, class_id = row["department_id"], row["gpu_class_id"]
        moment = segment_start[row["segment"]]
        tier = pricing.namespace_tiers.get(row["namespace"], "")
        card = pricing.card(class_id, tier, moment) if class_id is not None else None
        off_peak = row["off_peak"] if card else ONE
        if department_id is None:
            kind, namespace = LineKind.UNALLOCATED, row["namespace"]
            multiplier = ONE
        else:
            kind, namespace = LineKind.USAGE, ""
            multiplier = pricing.department_multiplier(department_id, moment) if card else ONE
        line_tier = tier if card is not None and card.tier else ""
        key = (kind, department_id, namespace, class_id, line_tier, card, off_peak, multiplier)
        line = lines.get(key)
        if line is None:
            line = lines[key] = Line(
                kind=kind,
                department_id=department_id,
                gpu_class_id=class_id,
                gpu_class_name=gpu_class_names.get(class_id, UNKNOWN_MODEL),
                namespace=namespace,
                tier=line_tier,
                card=card,
                off_peak_multiplier=off_peak,
                department_multiplier=multiplier,
            )
        line.gpu_seconds += seconds_used
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

    # Idle capacity: per GPU class and hour, the GPU-seconds nothing used (never below zero).
    used = defaultdict(lambda: ZERO)
    for row in (
        records.filter(gpu_class_id__isnull=False)
        .values("gpu_class_id", "hour_start")
        .annotate(gpu_seconds=Sum("quantity"))
        .order_by()
    ):
        used[(row["gpu_class_id"], row["hour_start"])] = row["gpu_seconds"] or ZERO
    idle_exact_by_class: dict[int, Decimal] = defaultdict(lambda: ZERO)
    idle_seconds_by_class: dict[int, Decimal] = defaultdict(lambda: ZERO)
    begun = hours if until is None else [hour for hour in hours if hour < until]
    for class_id, capacity in sorted(pricing.capacity_gpus.items()):
        capacity_seconds = Decimal(capacity) * SECONDS_PER_HOUR
        for hour in begun:
            hour_used = used.get((class_id, hour), ZERO)
            card = pricing.card(class_id, "", hour)
            if card is None:
                continue  # capacity that no card prices is not valued
            result.capacity_gpu_seconds += max(capacity_seconds, hour_used)
            idle = capacity_seconds - hour_used
            if idle > 0:
                idle_seconds_by_class[class_id] += idle
                idle_exact_by_class[class_id] += (
                    idle * card.price * off_peak_of[hour] / SECONDS_PER_HOUR
                )
    priced_usage_lines = [line for line in lines.values() if line.card is not None]
    result.idle_gpu_seconds = sum(idle_seconds_by_class.values(), ZERO)
    result.capacity_amount = round_money(
        exact_usage_value + sum(idle_exact_by_class.values(), ZERO), pricing.currency
    )
    # Idle is what the capacity is worth less what was used: rounding never makes a cent
    # appear or vanish between them.
    result.idle_amount = result.capacity_amount - sum(
        (line.list_amount for line in priced_usage_lines), ZERO
    )
    result.lines = sorted(
        lines.values(),
        key=lambda line: (
            line.department_id or 0,
            line.kind,
            line.namespace,
            line.gpu_class_name == UNKNOWN_MODEL,
            line.gpu_class_name,
            line.tier,
            line.card.valid_from if line.card else start,
            -line.off_peak_multiplier,
        ),
    )
    result.lines.extend(
        _idle_lines(
            result,
            pricing=pricing,
            unit=unit,
            idle_seconds_by_class=idle_seconds_by_class,
            idle_exact_by_class=idle_exact_by_class,
            gpu_class_names=gpu_class_names,
        )
    )
    return result


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
        if line.kind == LineKind.USAGE and line.card is not None:
            usage_seconds[line.department_id] += line.gpu_seconds
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
