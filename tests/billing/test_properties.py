"""Properties of the money arithmetic, over inputs Hypothesis chooses: a split adds up to
its total to the minor unit, rounding is half-up to each currency's minor unit, and any
month of the ledger reconciles to the cent under every idle-cost policy."""

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.models import BillingPeriod, IdlePolicy, LineKind, Statement, StatementLine
from billing.pricing import allocate, round_money
from tests import factories
from tests.billing.conftest import Ledger

MINOR_UNITS = {"EUR": Decimal("0.01"), "JPY": Decimal("1"), "BHD": Decimal("0.001")}
MARCH = dt.date(2026, 3, 1)
MARCH_START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
MARCH_HOURS = 744  # the portal's zone is UTC in the tests


def _half_up(value: Fraction, unit: Decimal) -> Decimal:
    """Round ``value`` half-up (away from zero on a tie) to a multiple of ``unit``,
    in exact rational arithmetic."""
    units = abs(value) / Fraction(unit)
    whole = math.floor(units + Fraction(1, 2))
    sign = -1 if value < 0 else 1
    return sign * whole * unit


def _decimals(low, high, max_places: int):
    return st.integers(0, max_places).flatmap(
        lambda places: st.decimals(
            min_value=Decimal(low),
            max_value=Decimal(high),
            places=places,
            allow_nan=False,
            allow_infinity=False,
        )
    )


# --- Splitting an amount ----------------------------------------------------------------------


@settings(max_examples=300, database=None)
@given(
    currency=st.sampled_from(sorted(MINOR_UNITS)),
    units=st.integers(-(10**9), 10**9),
    weights=st.lists(_decimals(0, 10**6, 6), min_size=1, max_size=12).filter(
        lambda ws: sum(ws) > 0
    ),
)
def test_a_split_adds_up_to_the_total_in_whole_units_close_to_each_exact_share(
    currency, units, weights
):
    unit = MINOR_UNITS[currency]
    total = units * unit

    parts = allocate(total, weights, unit)

    assert len(parts) == len(weights)
    assert sum(parts, Decimal(0)) == total
    weight_sum = sum(Fraction(w) for w in weights)
    for part, weight in zip(parts, weights, strict=True):
        assert (Fraction(part) / Fraction(unit)).denominator == 1, part
        exact = Fraction(total) * Fraction(weight) / weight_sum
        assert abs(Fraction(part) - exact) < Fraction(unit), (part, exact)


# --- Rounding -------------------------------------------------------------------------------


@settings(max_examples=300, database=None)
@given(
    currency=st.sampled_from(sorted(MINOR_UNITS)),
    amount=_decimals(-(10**7), 10**7, 8),
)
def test_rounding_is_half_up_to_the_minor_unit(currency, amount):
    unit = MINOR_UNITS[currency]
    assert round_money(amount, currency) == _half_up(Fraction(amount), unit)


@settings(max_examples=200, database=None)
@given(currency=st.sampled_from(sorted(MINOR_UNITS)), units=st.integers(-(10**7), 10**7))
def test_an_amount_exactly_half_way_rounds_away_from_zero(currency, units):
    unit = MINOR_UNITS[currency]
    half_way = units * unit + (unit / 2 if units >= 0 else -unit / 2)
    expected = (units + (1 if units >= 0 else -1)) * unit
    assert round_money(half_way, currency) == expected


# --- A month reconciles -------------------------------------------------------------------------


def _in_window(moment: dt.datetime, window: dict) -> bool:
    """Whether the UTC hour ``moment`` starts inside the window (UTC, opening on
    ``weekdays``, past midnight when the end is not after the start)."""
    start, end, days, t = window["start"], window["end"], window["weekdays"], moment.hour
    if start < end:
        return moment.weekday() in days and start <= t < end
    yesterday = (moment - dt.timedelta(days=1)).weekday()
    return (moment.weekday() in days and t >= start) or (yesterday in days and t < end)


@st.composite
def months(draw):
    capacity = draw(st.integers(1, 8))
    quantity = _decimals(0, capacity + 1, 6)  # now and then more than the class has
    return {
        "capacity": capacity,
        "price": draw(
            st.integers(2, 4).flatmap(
                lambda places: st.decimals(
                    min_value=Decimal("0.01"), max_value=Decimal("99.99"), places=places
                )
            )
        ),
        "off_peak": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "start": st.integers(0, 23),
                    "end": st.integers(0, 23),
                    "weekdays": st.sets(st.integers(0, 6), min_size=1).map(sorted),
                    "multiplier": _decimals("0.05", "1.5", 3).filter(lambda m: m > 0),
                }
            )
        ),
        "department_multiplier": draw(st.none() | _decimals(0, 2, 3)),
        "policy": draw(st.sampled_from(IdlePolicy.values)),
        # (department 0-2 or None for Unallocated, hour of March, GPU-hours)
        "rows": draw(
            st.lists(
                st.tuples(
                    st.sampled_from([None, 0, 1, 2]),
                    st.integers(0, MARCH_HOURS - 1),
                    quantity,
                ),
                max_size=14,
                unique_by=lambda row: (row[0], row[1]),
            )
        ),
    }


class _Rollback(Exception):
    """Undoes one example's rows."""


def _price_and_check(month: dict) -> None:
    gpu_class = factories.GpuClassFactory(capacity_gpus=month["capacity"])
    factories.RateCardFactory(gpu_class=gpu_class, price_per_gpu_hour=month["price"])
    departments = [factories.DepartmentFactory() for _ in range(3)]
    window = month["off_peak"]
    if window is not None:
        factories.OffPeakWindowFactory(
            start_time=dt.time(window["start"]),
            end_time=dt.time(window["end"]),
            weekdays=window["weekdays"],
            time_zone="UTC",
            price_multiplier=window["multiplier"],
        )
    if month["department_multiplier"] is not None:
        factories.DepartmentMultiplierFactory(
            department=departments[0], multiplier=month["department_multiplier"]
        )
    BillingPeriod.objects.create(
        month=MARCH,
        idle_policy=month["policy"],
        idle_department=departments[1] if month["policy"] == IdlePolicy.CHARGED else None,
    )
    ledger = Ledger()
    used: dict[dt.datetime, Fraction] = defaultdict(Fraction)
    for department, hour_index, quantity in month["rows"]:
        at = MARCH_START + dt.timedelta(hours=hour_index)
        ledger.add(
            at=at,
            gpu_hours=quantity,
            department=departments[department] if department is not None else None,
            gpu_class=gpu_class,
            namespace=None if department is not None else "orphan",
        )
        used[at] += Fraction(quantity)

    period = services.period_refresh(month=MARCH, force=True)

    unit = Decimal("0.01")
    lines = list(StatementLine.objects.filter(period=period))
    for statement in Statement.objects.filter(period=period):
        mine = [line.amount for line in lines if line.statement_id == statement.pk]
        assert statement.total == sum(mine, Decimal(0)), statement
    for line in lines:
        assert line.amount == line.amount.quantize(unit), line.description
        assert line.list_amount == line.list_amount.quantize(unit), line.description
    usage = sum((line.list_amount for line in lines if line.kind == LineKind.USAGE), Decimal(0))
    assert usage + period.unallocated_amount + period.idle_amount == period.capacity_amount
    idle_lines = [line.amount for line in lines if line.kind == LineKind.IDLE]
    assert sum(idle_lines, Decimal(0)) == period.idle_amount

    # The idle capacity's value computed here, hour by hour, exactly.
    exact_idle = Fraction(0)
    for hour_index in range(MARCH_HOURS):
        at = MARCH_START + dt.timedelta(hours=hour_index)
        idle = max(Fraction(month["capacity"]) - used[at], Fraction(0))
        rate = Fraction(month["price"])
        if window is not None and _in_window(at, window):
            rate *= Fraction(window["multiplier"])
        exact_idle += idle * rate
    priced = [
        line
        for line in lines
        if line.kind in (LineKind.USAGE, LineKind.UNALLOCATED) and line.unit_price is not None
    ]
    # Each priced line and the capacity are rounded once: the idle amount is off by at
    # most half a cent per rounding.
    slack = (len(priced) + 1) * Fraction(unit) / 2
    assert abs(Fraction(period.idle_amount) - Fraction(_half_up(exact_idle, unit))) <= slack


@pytest.mark.django_db
@settings(
    max_examples=45,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(month=months())
def test_any_month_reconciles_to_the_cent_under_every_idle_policy(month):
    try:
        with transaction.atomic():
            _price_and_check(month)
            raise _Rollback
    except _Rollback:
        pass


# --- A month with worker pools, portal jobs and fractions of GPUs reconciles -------------------


@st.composite
def months_with_pools(draw):
    capacity = draw(st.integers(1, 6))
    hour = st.integers(0, MARCH_HOURS - 1)
    return {
        "capacity": capacity,
        "price": draw(_decimals("0.01", "50", 2).filter(lambda p: p > 0)),
        "mig_price": draw(_decimals("0.01", "9", 2).filter(lambda p: p > 0)),
        "policy": draw(st.sampled_from(IdlePolicy.values)),
        # namespace workloads: (department 0-2 or None, hour, GPU-hours)
        "rows": draw(
            st.lists(
                st.tuples(st.sampled_from([None, 0, 1, 2]), hour, _decimals(0, capacity, 4)),
                max_size=8,
                unique_by=lambda row: (row[0], row[1]),
            )
        ),
        # the pool's allocation: (hour, GPU-hours); jobs: (department, hour, GPU-seconds)
        "pool": draw(
            st.lists(st.tuples(hour, _decimals(0, 2, 4)), max_size=6, unique_by=lambda r: r[0])
        ),
        "jobs": draw(
            st.lists(
                st.tuples(st.sampled_from([0, 1, 2]), hour, _decimals("0.001", 3600, 3)),
                max_size=8,
            )
        ),
        # MIG instances of the class (1/7 of a GPU each): (department, hour, instance-hours)
        "mig": draw(
            st.lists(st.tuples(st.sampled_from([0, 1]), hour, _decimals(0, 14, 3)), max_size=4)
        ),
    }


def _price_with_pools_and_check(month: dict) -> None:
    from jobs.models import JobGpuTime

    gpu_class = factories.GpuClassFactory(capacity_gpus=month["capacity"])
    mig = factories.GpuClassFactory(
        capacity_gpus=0, physical_class=gpu_class, fraction_numerator=1, fraction_denominator=7
    )
    factories.RateCardFactory(gpu_class=gpu_class, price_per_gpu_hour=month["price"])
    factories.RateCardFactory(gpu_class=mig, price_per_gpu_hour=month["mig_price"])
    factories.WorkerPoolFactory(namespace="gpu-workers")
    departments = [factories.DepartmentFactory() for _ in range(3)]
    kind = factories.JobKindFactory()
    BillingPeriod.objects.create(
        month=MARCH,
        idle_policy=month["policy"],
        idle_department=departments[1] if month["policy"] == IdlePolicy.CHARGED else None,
    )
    ledger = Ledger()
    at = [MARCH_START + dt.timedelta(hours=h) for h in range(MARCH_HOURS)]
    for department, h, quantity in month["rows"]:
        ledger.add(
            at=at[h],
            gpu_hours=quantity,
            department=departments[department] if department is not None else None,
            gpu_class=gpu_class,
            namespace=None if department is not None else "orphan",
        )
    for h, quantity in month["pool"]:
        ledger.add(at=at[h], gpu_hours=quantity, gpu_class=gpu_class, namespace="gpu-workers")
    for index, (department, h, quantity) in enumerate(month["mig"]):
        ledger.add(
            at=at[h],
            gpu_hours=quantity,
            department=departments[department],
            gpu_class=mig,
            namespace=f"mig-{index}",
        )
    for department, h, seconds in month["jobs"]:
        job = factories.GenerationJobFactory(
            department=departments[department], kind=kind, gpu_class=gpu_class, state="succeeded"
        )
        JobGpuTime.objects.create(
            job=job,
            attempt=1,
            hour_start=at[h],
            gpu_seconds=seconds,
            gpus=1,
            department=job.department,
            gpu_class=gpu_class,
            tier=job.tier,
            kind=kind,
            pool_namespace="gpu-workers",
        )

    period = services.period_refresh(month=MARCH, force=True)

    lines = list(StatementLine.objects.filter(period=period))
    for statement in Statement.objects.filter(period=period):
        mine = [line.amount for line in lines if line.statement_id == statement.pk]
        assert statement.total == sum(mine, Decimal(0)), statement
    used = sum(
        (line.list_amount for line in lines if line.kind in (LineKind.USAGE, LineKind.JOBS)),
        Decimal(0),
    )
    assert (
        used + period.unallocated_amount + period.pool_idle_amount + period.idle_amount
        == period.capacity_amount
    )
    for kind, figure in (
        (LineKind.POOL_IDLE, period.pool_idle_amount),
        (LineKind.IDLE, period.idle_amount),
    ):
        assert sum((line.amount for line in lines if line.kind == kind), Decimal(0)) == figure
    # Every job-second is on a line, once.
    job_seconds = sum((Fraction(s) for _, _, s in month["jobs"]), Fraction(0))
    billed = sum(
        (Fraction(line.gpu_seconds) for line in lines if line.kind == LineKind.JOBS), Fraction(0)
    )
    assert billed == job_seconds
    for pool_hour in period.pool_hours.all():
        assert (
            pool_hour.allocation_seconds
            == pool_hour.jobs_seconds + pool_hour.idle_seconds - pool_hour.excess_seconds
        )


@pytest.mark.django_db
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(month=months_with_pools())
def test_a_month_with_pools_jobs_and_mig_reconciles_to_the_cent_under_every_policy(month):
    try:
        with transaction.atomic():
            _price_with_pools_and_check(month)
            raise _Rollback
    except _Rollback:
        pass
