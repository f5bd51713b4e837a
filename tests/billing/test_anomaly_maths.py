"""billing.anomalies: a planted spike is found with its size, a smooth series and a small
department's jitter are not."""

import datetime as dt
import random
from decimal import Decimal

from billing import anomalies
from billing.foresight import DepartmentAnomaly

DAY = dt.date(2026, 12, 2)


def series(values, *, last=DAY):
    n = len(values)
    return {last - dt.timedelta(days=n - 1 - i): Decimal(v) for i, v in enumerate(values)}


def test_a_planted_spike_is_found_with_its_size():
    rng = random.Random(3)  # noqa: S311 - a fixed series, not a secret
    values = [str(125 + rng.randint(-10, 10)) for _ in range(28)] + ["412"]
    found = anomalies.find(series(values), days=[DAY], minimum=Decimal(50))
    (anomaly,) = found
    assert anomaly.day == DAY and anomaly.amount == Decimal(412)
    usual = sorted(Decimal(v) for v in values[:28])
    assert anomaly.usual == (usual[13] + usual[14]) / 2
    assert anomaly.change == (Decimal(412) - anomaly.usual) / anomaly.usual


def test_a_smooth_series_has_no_anomaly():
    values = [str(100 + 3 * i) for i in range(40)]  # steady growth, nothing out of line
    days = sorted(series(values))[-10:]
    assert anomalies.find(series(values), days=days, minimum=Decimal(50)) == []


def test_a_small_department_below_the_minimum_is_not_flagged():
    values = ["1"] * 28 + ["9"]  # nine times its usual day, but 8 EUR
    assert anomalies.find(series(values), days=[DAY], minimum=Decimal(50)) == []
    assert len(anomalies.find(series(values), days=[DAY], minimum=Decimal(5))) == 1


def test_too_short_a_history_judges_nothing():
    values = ["100"] * 10 + ["900"]
    assert anomalies.find(series(values), days=[DAY], minimum=Decimal(50), first=None) != []
    start = DAY - dt.timedelta(days=10)
    assert anomalies.find(series(values), days=[DAY], minimum=Decimal(50), first=start) == []


def test_the_anomaly_reads_as_a_change_on_a_day(db):
    from departments.models import Department

    found = DepartmentAnomaly(
        department=Department(name="Marketing"),
        anomaly=anomalies.Anomaly(
            day=DAY, amount=Decimal("412"), usual=Decimal("125"), mad=Decimal(5)
        ),
        currency="EUR",
    )
    assert found.text == "+230 % on 2 Dec: 412.00 EUR vs a usual 125.00 EUR"
