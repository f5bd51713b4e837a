"""Charts of the finance dashboard, built from the chargeback report and the cost trend.

The figures follow the department page's charts (:mod:`metering.charts`): plotly in
Python, the portal's layout, rendered as HTML fragments that expect plotly.js from our own
static files. Figure data are plain lists of floats, never numpy arrays or ``Decimal``, so
the page carries them as readable JSON; amounts are rounded to the minor unit already.
"""

import datetime as dt
from decimal import Decimal

import plotly.graph_objects as go
from django.utils.safestring import SafeString

from billing.selectors import ChargebackReport, TrendPoint
from metering.charts import LAYOUT, figure_html
from metering.selectors import UNALLOCATED

BY_CLASS_DIV = "chart-cost-by-class"
TREND_DIV = "chart-cost-trend"
TREND_MONTHS = 12
TREND_SERIES = 12  # departments drawn one by one; the rest are summed


def trend_months(last: dt.date, count: int = TREND_MONTHS) -> list[dt.date]:
    """The ``count`` months (first days) that end with the month of ``last``, oldest first."""
    year, month = last.year, last.month
    months = []
    for _ in range(count):
        months.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def _layout(currency: str) -> dict:
    # "relative" stacks like "stack" but draws negative amounts (credits) below zero.
    layout = {**LAYOUT, "barmode": "relative"}
    layout["xaxis"] = {**LAYOUT["xaxis"], "type": "category"}
    layout["yaxis"] = {**LAYOUT["yaxis"], "title": {"text": currency}}
    return layout


def cost_by_class_figure(*, report: ChargebackReport) -> go.Figure:
    """Stacked bars: each department's spend (and *Unallocated*, where the report has it),
    one colour per GPU class, in the report's order (largest spend first)."""
    departments = [row.name for row in report.rows]
    figure = go.Figure(
        [
            go.Bar(
                name=class_name,
                x=departments,
                y=[float(row.by_class.get(class_name, Decimal(0))) for row in report.rows],
                hovertemplate=(
                    f"%{{x}}: %{{y:,.2f}} {report.currency}<extra>%{{fullData.name}}</extra>"
                ),
            )
            for class_name in report.class_names
        ]
    )
    figure.update_layout(**_layout(report.currency))
    return figure


def cost_trend_figure(
    *, points: list[TrendPoint], months: list[dt.date], currency: str
) -> go.Figure:
    """Stacked bars: each month's statement totals per department (and *Unallocated*),
    every month of ``months`` on the axis (zero where a month has no figures)."""
    amounts: dict[str, dict[dt.date, Decimal]] = {}
    summed: dict[str, int] = {}  # series of departments summed already: how many each
    for point in points:
        per_month = amounts.setdefault(point.department, {})
        per_month[point.month] = per_month.get(point.month, Decimal(0)) + point.amount
        if point.others:
            summed[point.department] = point.others
    # The departments that spent most keep a series each; the rest share one, so a fleet of
    # hundreds of departments stays a readable chart (and a quick one to build). The
    # selector sums them already when asked for its top spenders.
    departments = sorted(
        (name for name in amounts if name != UNALLOCATED and name not in summed),
        key=lambda name: (-sum(amounts[name].values()), name),
    )
    if len(departments) + len(summed) > TREND_SERIES:
        keep = TREND_SERIES - 1
        rest = departments[keep:]
        count = len(rest) + sum(summed.values())
        others = f"{count} other departments"
        merged: dict[dt.date, Decimal] = {}
        for name in [*rest, *summed]:
            for month, amount in amounts.pop(name).items():
                merged[month] = merged.get(month, Decimal(0)) + amount
        amounts[others] = merged
        summed = {others: count}
        departments = departments[:keep]
    # Departments by name, then the others, Unallocated last.
    names = sorted(departments) + sorted(summed)
    if UNALLOCATED in amounts:
        names.append(UNALLOCATED)
    x = [f"{month:%Y-%m}" for month in months]
    figure = go.Figure(
        [
            go.Bar(
                name=name,
                x=x,
                y=[float(amounts[name].get(month, Decimal(0))) for month in months],
                hovertemplate=f"%{{x}}: %{{y:,.2f}} {currency}<extra>%{{fullData.name}}</extra>",
            )
            for name in names
        ]
    )
    figure.update_layout(**_layout(currency))
    return figure


def cost_by_class_chart(*, report: ChargebackReport) -> SafeString | None:
    """The chart as HTML, or None when no row has any amount to draw."""
    if not any(amount for row in report.rows for amount in row.by_class.values()):
        return None
    return figure_html(cost_by_class_figure(report=report), div_id=BY_CLASS_DIV)


def cost_trend_chart(
    *, points: list[TrendPoint], months: list[dt.date], currency: str
) -> SafeString | None:
    if not any(point.amount for point in points):
        return None
    return figure_html(
        cost_trend_figure(points=points, months=months, currency=currency), div_id=TREND_DIV
    )
