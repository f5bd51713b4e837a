"""The 12-month trend keeps one series per department only for the biggest spenders, so a
fleet of hundreds of departments stays a chart a person can read."""

import datetime as dt
from decimal import Decimal

from billing.charts import TREND_SERIES, cost_trend_figure, trend_months, trend_months_charged
from billing.selectors import TrendPoint

MONTHS = [dt.date(2026, 2, 1), dt.date(2026, 3, 1)]


def test_small_spenders_are_summed_into_one_series_and_unallocated_stays_apart():
    points = [
        TrendPoint(month=MONTHS[1], department=f"Dept {n:02}", amount=Decimal(n))
        for n in range(1, 21)
    ] + [TrendPoint(month=MONTHS[0], department="Unallocated", amount=Decimal("7.5"))]

    figure = cost_trend_figure(points=points, months=MONTHS, currency="EUR")

    series = {trace.name: list(trace.y) for trace in figure.data}
    assert len(series) == TREND_SERIES + 1
    # Departments 10 to 20 spent most: 11 of them keep their series, by name.
    assert list(series)[: TREND_SERIES - 1] == [f"Dept {n:02}" for n in range(10, 21)]
    assert series["9 other departments"] == [0, float(sum(range(1, 10)))]
    assert series["Unallocated"] == [7.5, 0]


def test_a_few_departments_each_keep_their_series_by_name():
    points = [
        TrendPoint(month=MONTHS[0], department="Training", amount=Decimal("1")),
        TrendPoint(month=MONTHS[0], department="Marketing", amount=Decimal("5")),
    ]
    figure = cost_trend_figure(points=points, months=MONTHS, currency="EUR")
    assert [trace.name for trace in figure.data] == ["Marketing", "Training"]


def test_the_selector_sums_the_small_spenders_in_the_database(db):
    from billing import selectors
    from billing.models import BillingPeriod, Statement
    from tests import factories

    finance = factories.UserFactory(groups=["finance"])
    period = BillingPeriod.objects.create(month=MONTHS[1])
    for n in range(1, 15):
        Statement.objects.create(
            period=period,
            department=factories.DepartmentFactory(name=f"Dept {n:02}"),
            total=Decimal(n),
        )

    points = selectors.cost_trend(user=finance, months=MONTHS, top=11)

    named = {
        p.department: p.amount for p in points if not p.others and p.department != "Unallocated"
    }
    assert named == {f"Dept {n:02}": Decimal(n) for n in range(4, 15)}
    (others,) = [p for p in points if p.others]
    assert (others.department, others.others, others.amount) == ("3 other departments", 3, 6)
    figure = cost_trend_figure(points=points, months=MONTHS, currency="EUR")
    # Unallocated has nothing in these months: no bar, so no legend entry either.
    assert [trace.name for trace in figure.data][-1] == "3 other departments"
    assert len(figure.data) == TREND_SERIES


# --- Empty months before the first charge, and the running month ----------------------------

YEAR = trend_months(dt.date(2026, 12, 1))  # January to December 2026


def test_months_before_the_first_charge_are_not_drawn():
    points = [
        TrendPoint(month=dt.date(2026, 10, 1), department="Marketing", amount=Decimal("3")),
        TrendPoint(month=dt.date(2026, 12, 1), department="Marketing", amount=Decimal("4")),
        # A month whose statements are all 0.00 is as empty as one without any.
        TrendPoint(month=dt.date(2026, 9, 1), department="Marketing", amount=Decimal("0")),
    ]

    figure = cost_trend_figure(points=points, months=YEAR, currency="EUR")

    (marketing,) = figure.data
    # October on; November, between two charged months, stays on the axis at zero.
    assert list(marketing.x) == ["Oct 2026", "Nov 2026", "Dec 2026"]
    assert list(marketing.y) == [3.0, 0.0, 4.0]
    assert trend_months_charged(points=points, months=YEAR)[0] == dt.date(2026, 10, 1)


def test_the_running_month_is_drawn_as_partial_to_date():
    points = [
        TrendPoint(month=dt.date(2026, 11, 1), department=name, amount=Decimal("5"))
        for name in ("Marketing", "Unallocated")
    ] + [TrendPoint(month=dt.date(2026, 12, 1), department="Marketing", amount=Decimal("2"))]

    figure = cost_trend_figure(
        points=points, months=YEAR, currency="EUR", running=dt.date(2026, 12, 1)
    )

    for trace in figure.data:
        assert list(trace.x) == ["Nov 2026", "Dec 2026 (partial, to date)"], trace.name
        # Hatched: the running month's bars, and those alone.
        assert list(trace.marker.pattern.shape) == ["", "/"], trace.name
    (note,) = figure.layout.annotations
    assert note.x == "Dec 2026 (partial, to date)"
    # The note names the month as the axis does.
    assert note.text == "Dec 2026: costs to date"


def test_a_month_that_has_ended_is_not_partial():
    points = [TrendPoint(month=dt.date(2026, 11, 1), department="Marketing", amount=Decimal("5"))]
    figure = cost_trend_figure(
        points=points, months=YEAR[:-1], currency="EUR", running=dt.date(2026, 12, 1)
    )
    (marketing,) = figure.data
    assert list(marketing.x) == ["Nov 2026"]
    assert not figure.layout.annotations
    assert marketing.marker.pattern.shape is None
