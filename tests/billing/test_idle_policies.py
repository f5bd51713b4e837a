"""Who pays for idle capacity, as the month's policy says: IT (absorbed, lines of the period
that no statement holds), the departments in proportion to their use (shared, to the
cent), or one chosen department (charged). Shared with nobody using the fleet falls back
to absorbed.

The fleet: 2 A100 at 2.00 EUR per GPU-hour over March 2026 (744 hours in UTC), that is
2976.00 EUR of capacity. One hour, marketing uses 1 GPU-hour, training 0.5 and an unowned
namespace 0.25: 3.50 EUR used, 2972.50 EUR (1486.25 GPU-hours) idle.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services
from billing.models import BillingPeriod, IdlePolicy, LineKind, Statement, StatementLine
from tests import factories
from tests.billing.conftest import hour

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def used(fleet, ledger):
    a100, marketing, training = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="0.5", department=training, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="0.25", gpu_class=a100, namespace="orphan")
    return fleet


def _refresh(policy: str, department=None) -> BillingPeriod:
    BillingPeriod.objects.create(month=MARCH, idle_policy=policy, idle_department=department)
    return services.period_refresh(month=MARCH)


def _idle_lines(period):
    return list(StatementLine.objects.filter(period=period, kind=LineKind.IDLE).order_by("pk"))


def _totals(period) -> dict[str, Decimal]:
    return dict(Statement.objects.filter(period=period).values_list("department__slug", "total"))


def test_absorbed_idle_capacity_is_a_line_of_the_period_that_no_statement_holds(used):
    period = _refresh(IdlePolicy.ABSORBED)

    assert (period.capacity_amount, period.idle_amount) == (Decimal("2976.00"), Decimal("2972.50"))
    assert period.idle_gpu_hours == Decimal("1486.25")
    (idle,) = _idle_lines(period)
    assert (idle.statement, idle.department, idle.amount) == (None, None, Decimal("2972.50"))
    assert idle.gpu_hours == Decimal("1486.25")
    assert idle.description == "Idle A100: 1486.25 GPU-hours, absorbed by IT"
    # The departments pay their use only.
    assert _totals(period) == {"marketing": Decimal("2.00"), "training": Decimal("1.00")}


def test_absorbed_idle_capacity_is_one_line_per_gpu_class(used):
    t4 = factories.GpuClassFactory(slug="t4", name="T4", capacity_gpus=1)
    factories.RateCardFactory(gpu_class=t4, price_per_gpu_hour=Decimal("0.35"))

    period = _refresh(IdlePolicy.ABSORBED)

    # 744 idle T4 hours at 0.35 are worth 260.40 more.
    assert (period.capacity_amount, period.idle_amount) == (Decimal("3236.40"), Decimal("3232.90"))
    assert [(line.gpu_class.name, line.gpu_hours, line.amount) for line in _idle_lines(period)] == [
        ("A100", Decimal("1486.25"), Decimal("2972.50")),
        ("T4", Decimal("744"), Decimal("260.40")),
    ]


def test_shared_idle_capacity_is_split_by_use_and_adds_up_to_the_cent(used):
    _, marketing, training = used

    period = _refresh(IdlePolicy.SHARED)

    # 2972.50 in thirds: 1981.666… and 990.833…; the cent left over goes to the larger
    # remainder (marketing's .67).
    idle = {line.department_id: line for line in _idle_lines(period)}
    assert {d: line.amount for d, line in idle.items()} == {
        marketing.pk: Decimal("1981.67"),
        training.pk: Decimal("990.83"),
    }
    assert sum(line.amount for line in idle.values()) == period.idle_amount
    assert all(line.statement.department_id == d for d, line in idle.items())
    assert idle[marketing.pk].share == Decimal("0.6666666667")
    assert idle[training.pk].share == Decimal("0.3333333333")
    assert _totals(period) == {"marketing": Decimal("1983.67"), "training": Decimal("991.83")}
    # Nobody else holds idle capacity: no line without a statement.
    assert not StatementLine.objects.filter(period=period, statement=None, kind=LineKind.IDLE)


def test_charged_idle_capacity_is_all_on_the_chosen_departments_statement(used):
    _, _, training = used

    period = _refresh(IdlePolicy.CHARGED, department=training)

    (idle,) = _idle_lines(period)
    assert idle.statement == Statement.objects.get(period=period, department=training)
    assert (idle.department, idle.amount) == (training, Decimal("2972.50"))
    assert idle.description == "Idle A100: 1486.25 GPU-hours, charged to this department"
    assert _totals(period) == {"marketing": Decimal("2.00"), "training": Decimal("2973.50")}


def test_charged_idle_capacity_reaches_a_department_that_used_nothing(fleet, ledger):
    a100, marketing, training = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)

    period = _refresh(IdlePolicy.CHARGED, department=training)

    assert _totals(period) == {"marketing": Decimal("2.00"), "training": Decimal("2974.00")}


def test_shared_with_nobody_using_the_fleet_falls_back_to_absorbed(fleet, ledger):
    a100, _, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="0.25", gpu_class=a100, namespace="orphan")

    period = _refresh(IdlePolicy.SHARED)

    (idle,) = _idle_lines(period)
    assert (idle.statement, idle.department, idle.amount) == (None, None, Decimal("2975.50"))
    assert idle.description == (
        "Idle A100: 1487.75 GPU-hours, absorbed by IT (no department used the fleet)"
    )
    assert period.idle_amount == Decimal("2975.50")
    assert _totals(period) == {"marketing": Decimal("0"), "training": Decimal("0")}
