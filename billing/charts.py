"""Charts of the finance dashboard, built from the chargeback report and the cost trend.

The figures follow the department page's charts (:mod:`metering.charts`): plotly in
Python, the portal's layout, rendered as HTML fragments that expect plotly.js from our own
static files. Figure data are plain lists of floats, never numpy arrays or ``Decimal``, so
the page carries them as readable JSON; amounts are rounded to the minor unit already.
"""

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

import plotly.graph_objects as go
from django.utils.safestring import SafeString

from billing.selectors import ChargebackReport, TrendPoint
from metering.charts import (
    DEPARTMENT_PALETTE,
    LAYOUT,
    NO_ENTITY_PATTERNS,
    OTHERS_COLOUR,
    department_colours,
    drawn,
    figure_html,
    gpu_class_colours,
    name_colour,
)
from metering.selectors import UNALLOCATED

BY_CLASS_DIV = "chart-cost-by-class"
TREND_DIV = "chart-cost-trend"
TREND_MONTHS = 12
TREND_SERIES = 12  # departments drawn one by one; the rest are summed
# The running month's label and bars: its costs so far, not the month's.
PARTIAL = " (partial, to date)"
PARTIAL_PATTERN = "/"


def trend_months(last: dt.date, count: int = TREND_MONTHS) -> list[dt.date]:
    """The ``count`` months (first days) that end with the month of ``last``, oldest first."""
    year, month = last.year, last.month
    months = []
    for _ in range(count):
        months.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def trend_months_charged(*, points: list[TrendPoint], months: list[dt.date]) -> list[dt.date]:
    """``months`` from the first one with an amount to draw (none when no month has one):
    the trend does not open on a row of empty months before the portal charged anything.
    Empty months after the first charge stay, so the axis keeps its time."""
    charged = {point.month for point in points if point.amount}
    first = next((index for index, month in enumerate(months) if month in charged), None)
    return [] if first is None else months[first:]


def _month_label(month: dt.date, *, running: dt.date | None) -> str:
    """``Sep 2026``: how the trend names a month on its axis, in its note and in the
    page's subtitle (``date:"M Y"``)."""
    return f"{month:%b %Y}" + (PARTIAL if month == running else "")


def _layout(currency: str) -> dict:
    # "relative" stacks like "stack" but draws negative amounts (credits) below zero.
    layout = {**LAYOUT, "barmode": "relative"}
    layout["xaxis"] = {**LAYOUT["xaxis"], "type": "category"}
    layout["yaxis"] = {**LAYOUT["yaxis"], "title": {"text": currency}}
    return layout


def _class_marker(name: str, colours: Mapping[str, str]) -> dict:
    """A GPU class's bars in its colour. The two idle series are told apart by a pattern
    as well as a grey, drawn over the solid grey (which keeps its contrast on white)."""
    marker: dict = {"color": name_colour(name, colours)}
    if name in NO_ENTITY_PATTERNS:
        marker["pattern"] = {"shape": NO_ENTITY_PATTERNS[name], "fillmode": "overlay"}
    return marker


def cost_by_class_figure(
    *, report: ChargebackReport, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """Stacked bars: each department's spend (and *Unallocated*, where the report has it),
    each GPU class in its colour (``colours``, see :func:`metering.charts.gpu_class_colours`),
    in the report's order (largest spend first). A class that cost nothing is not drawn."""
    colours = colours or {}
    departments = [row.name for row in report.rows]
    series = [
        (name, [float(row.by_class.get(name, Decimal(0))) for row in report.rows])
        for name in report.class_names
    ]
    figure = go.Figure(
        [
            go.Bar(
                name=class_name,
                x=departments,
                y=y,
                marker=_class_marker(class_name, colours),
                hovertemplate=(
                    f"%{{x}}: %{{y:,.2f}} {report.currency}<extra>%{{fullData.name}}</extra>"
                ),
            )
            for class_name, y in series
            if drawn(y)
        ]
    )
    figure.update_layout(**_layout(report.currency))
    return figure


def cost_trend_figure(
    *,
    points: list[TrendPoint],
    months: list[dt.date],
    currency: str,
    running: dt.date | None = None,
    colours: Mapping[str, str] | None = None,
) -> go.Figure:
    """Stacked bars: each month's statement totals per department (and *Unallocated*),
    each department in its colour (``colours``, see
    :func:`metering.charts.department_colours`), the months of ``months`` from the first
    one charged on the axis (zero where a later month has no figures); a department with
    nothing in those months is not drawn. The ``running`` month, not over yet, is
    labelled and hatched as partial, to date."""
    colours = colours or {}
    months = trend_months_charged(points=points, months=months) or months
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
    x = [_month_label(month, running=running) for month in months]
    partial = running in months
    marker = (
        {"pattern": {"shape": [PARTIAL_PATTERN if m == running else "" for m in months]}}
        if partial
        else {}
    )
    series = [(name, [float(amounts[name].get(m, Decimal(0))) for m in months]) for name in names]
    figure = go.Figure(
        [
            go.Bar(
                name=name,
                x=x,
                y=y,
                hovertemplate=f"%{{x}}: %{{y:,.2f}} {currency}<extra>%{{fullData.name}}</extra>",
                marker={
                    **marker,
                    "color": (
                        OTHERS_COLOUR
                        if name in summed
                        else name_colour(name, colours, DEPARTMENT_PALETTE)
                    ),
                },
            )
            for name, y in series
            if drawn(y)
        ]
    )
    layout = _layout(currency)
    if partial:
        # Above the plot, over the running month: its bars will still grow.
        layout["margin"] = {**layout["margin"], "t": 36}
        layout["annotations"] = [
            {
                "x": _month_label(running, running=running),
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "text": f"{_month_label(running, running=None)}: costs to date",
                "font": {"size": 12},
            }
        ]
    figure.update_layout(**layout)
    return figure


def cost_by_class_chart(*, report: ChargebackReport) -> SafeString | None:
    """The chart as HTML, or None when no row has any amount to draw."""
    if not any(amount for row in report.rows for amount in row.by_class.values()):
        return None
    return figure_html(
        cost_by_class_figure(report=report, colours=gpu_class_colours()), div_id=BY_CLASS_DIV
    )


def cost_trend_chart(
    *,
    points: list[TrendPoint],
    months: list[dt.date],
    currency: str,
    running: dt.date | None = None,
) -> SafeString | None:
    """The trend as HTML, or None when no month has any amount to draw."""
    if not any(point.amount for point in points):
        return None
    return figure_html(
        cost_trend_figure(
            points=points,
            months=months,
            currency=currency,
            running=running,
            colours=department_colours(),
        ),
        div_id=TREND_DIV,
    )
