"""Charts of metered usage for the pages, and the small reads they need.

Figures are built with plotly in Python and rendered as HTML fragments that expect
plotly.js from our own static files (``{% static 'vendor/plotly/plotly-basic.min.js' %}``,
the basic bundle); nothing is fetched from a CDN. Figure data are plain lists of numbers,
never numpy arrays, so the page carries them as readable JSON.
"""

import datetime as dt
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import plotly.graph_objects as go
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from core import calendar
from core.calendar import day_bounds
from departments.models import Department, GpuClass
from metering import selectors

CHART_CONFIG = {"displaylogo": False, "responsive": True}
CHART_HEIGHT_PX = 360
DAILY_WINDOW_DAYS = 30
GPU_HOURS = "GPU-hours"
# GPU classes and departments take their colours from two palettes that share none, so a
# colour stands for one kind of thing on every page (green is never a GPU class on one
# chart and a department on the next). The colours were picked to stay apart under the
# common colour-vision deficiencies as far as twelve colours can, and each stands at least
# 3:1 against the white plot (WCAG's contrast for graphics). Red is kept out (it is the
# budget line), and so are greys (they are for what is no entity).
GPU_CLASS_PALETTE = (
    "#2357c6",  # blue
    "#7f196a",  # plum
    "#599849",  # leaf green
    "#196851",  # pine green
    "#e54dac",  # pink
    "#008697",  # teal
)
DEPARTMENT_PALETTE = (
    "#a86100",  # orange
    "#059a83",  # sea green
    "#8682c0",  # lavender
    "#1189f9",  # sky blue
    "#6a5b8c",  # dusky violet
    "#a6850c",  # ochre
)
BUDGET_COLOUR = "#b3261e"
# Series that stand for no GPU class or department: a grey each, the same on every chart,
# told apart by lightness and tint (and the two idle series by a pattern as well, see
# NO_ENTITY_PATTERNS), so that no two things that mean different things share a colour.
NO_ENTITY_COLOURS = {
    selectors.UNKNOWN_MODEL: "#4f5b6e",  # blue-grey
    selectors.UNALLOCATED: "#6e6259",  # warm grey
    "Idle capacity": "#8f8f8f",  # light grey, cross-hatched
    "Worker pool idle": "#7a7a7a",  # mid grey, dotted
    "Adjustments": "#2f333b",  # near-black
}
NO_ENTITY_PATTERNS = {"Idle capacity": "x", "Worker pool idle": "."}
OTHERS_COLOUR = "#8a93a6"  # the sum of the departments beyond the biggest spenders
# The portal's look (static/portal/portal.css), without plotly's heavy default template.
LAYOUT = {
    "template": "none",
    "height": CHART_HEIGHT_PX,
    "margin": {"l": 56, "r": 16, "t": 16, "b": 48},
    "font": {"family": 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', "size": 13},
    "paper_bgcolor": "#fff",
    "plot_bgcolor": "#fff",
    # Every trace names its colour (see entity_colour); the colorway only backs that up.
    "colorway": list(GPU_CLASS_PALETTE),
    # plotly hides the legend of a single trace; ours always says what the bars are.
    "showlegend": True,
    "legend": {"orientation": "h", "y": -0.18},
    # automargin: the margins grow to fit long tick labels (department names) whole.
    "xaxis": {"gridcolor": "#dde2ec", "type": "date", "automargin": True},
    "yaxis": {
        "gridcolor": "#dde2ec",
        "title": {"text": GPU_HOURS},
        "rangemode": "tozero",
        "automargin": True,
    },
}


def entity_colour(pk: int, palette: tuple[str, ...]) -> str:
    """The colour of the entity whose primary key is ``pk``, from ``palette``.

    A function of the entity alone, so it is the same on every chart and page, for every
    role, whatever else a chart draws; a new class or department takes the next colour and
    recolours none of the others (primary keys are never reused). The first
    ``len(palette)`` entities each have a colour of their own."""
    return palette[(pk - 1) % len(palette)]


def gpu_class_colour(pk: int) -> str:
    """The colour of the GPU class whose primary key is ``pk``."""
    return entity_colour(pk, GPU_CLASS_PALETTE)


def department_colour(pk: int) -> str:
    """The colour of the department whose primary key is ``pk``: never a GPU class's."""
    return entity_colour(pk, DEPARTMENT_PALETTE)


def name_colour(
    name: str, colours: Mapping[str, str], palette: tuple[str, ...] = GPU_CLASS_PALETTE
) -> str:
    """The colour of the series ``name``: from ``colours`` (see :func:`gpu_class_colours`,
    :func:`department_colours`), the greys of series that are no entity, or else one of
    ``palette`` that follows the name (a chart drawn with no colours at hand)."""
    if name in colours:
        return colours[name]
    if name in NO_ENTITY_COLOURS:
        return NO_ENTITY_COLOURS[name]
    if name.endswith(" other departments"):
        return OTHERS_COLOUR
    return palette[zlib.crc32(name.encode()) % len(palette)]


def gpu_class_colours() -> dict[str, str]:
    """Every GPU class's colour by its name (one query)."""
    return {name: gpu_class_colour(pk) for pk, name in GpuClass.objects.values_list("pk", "name")}


def department_colours() -> dict[str, str]:
    """Every department's colour by its name (one query). Names only reach a chart for the
    departments its reader may see."""
    return {
        name: department_colour(pk) for pk, name in Department.objects.values_list("pk", "name")
    }


def drawn(values: list[float]) -> bool:
    """Whether a series has a bar to draw: one of only zeros would be a legend entry with
    nothing behind it."""
    return any(values)


def last_days(*, now: dt.datetime, days: int = DAILY_WINDOW_DAYS) -> list[dt.date]:
    """The ``days`` calendar days (in the portal's time zone) that end with today."""
    today = now.astimezone(calendar.portal_zone()).date()
    return [today - dt.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def _class_order(name: str) -> tuple[bool, str]:
    """GPU classes by name, *Unknown model* last."""
    return (name == selectors.UNKNOWN_MODEL, name)


def _by_class_name(rows: list[dict]) -> list[tuple[str, Decimal]]:
    """``usage_summary`` rows summed per GPU class name."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        name = row["gpu_class_name"]
        totals[name] = totals.get(name, selectors.ZERO) + row["quantity"]
    return sorted(totals.items(), key=lambda item: _class_order(item[0]))


def daily_gpu_hours_figure(
    *, rows: list[dict], days: list[dt.date], colours: Mapping[str, str] | None = None
) -> go.Figure:
    """Stacked bars: GPU-hours per day, each GPU class in its colour (``colours``, see
    :func:`gpu_class_colours`), every day of ``days`` on the axis (zero where nothing ran);
    a class with no GPU-hours in those days is not drawn. ``rows`` are ``usage_summary``
    rows per day."""
    colours = colours or {}
    per_class: dict[str, dict[dt.date, Decimal]] = {}
    for row in rows:
        day = row["period_start"].astimezone(calendar.portal_zone()).date()
        hours = per_class.setdefault(row["gpu_class_name"], {})
        hours[day] = hours.get(day, selectors.ZERO) + row["quantity"]
    x = [day.isoformat() for day in days]
    series = [
        (name, [float(per_class[name].get(day, 0)) for day in days])
        for name in sorted(per_class, key=_class_order)
    ]
    figure = go.Figure(
        [
            go.Bar(
                name=name,
                x=x,
                y=y,
                marker={"color": name_colour(name, colours)},
                hovertemplate="%{x|%a %d %b}: %{y:.2f} GPU-hours<extra>%{fullData.name}</extra>",
            )
            for name, y in series
            if drawn(y)
        ]
    )
    figure.update_layout(**LAYOUT, barmode="stack")
    return figure


@dataclass(frozen=True)
class Projection:
    """Where the month's cumulative GPU-hours are heading, for the burn-down: from
    ``start`` (today, with what was used so far) through each later day of the month, the
    expected cumulative GPU-hours and the low and high ends of its band (billing's
    forecast fills it in; this module only draws it)."""

    start: dt.date
    used: float
    days: list[dt.date]
    expected: list[float]
    low: list[float]
    high: list[float]
    band_label: str = "80 % band"


def burn_down_figure(
    *,
    burn: selectors.BurnDown,
    colour: str = DEPARTMENT_PALETTE[0],
    projection: Projection | None = None,
) -> go.Figure:
    """GPU-hours used so far this month, cumulative per day, in the department's
    ``colour``, against the monthly budget drawn across the whole month (when the
    department has one), and the projection to the month's end with its band (when there
    is one)."""
    start, end = calendar.month_bounds(burn.month_start)
    # The axis runs to the first day of next month, so that the last day is drawn whole.
    first_day, next_month = start.date(), end.date()
    traces = [
        go.Scatter(
            name="Used",
            x=[day.isoformat() for day in burn.days],
            y=[float(hours) for hours in burn.used_cumulative],
            mode="lines+markers",
            line={"width": 3, "color": colour},
            marker={"color": colour},
            hovertemplate="%{x|%a %d %b}: %{y:.2f} GPU-hours used<extra></extra>",
        )
    ]
    if projection is not None and projection.days:
        x = [projection.start.isoformat(), *(day.isoformat() for day in projection.days)]
        traces += [
            go.Scatter(
                name=f"Projection, {projection.band_label} (low)",
                x=x,
                y=[projection.used, *projection.low],
                mode="lines",
                line={"width": 0, "color": colour},
                showlegend=False,
                hoverinfo="skip",
            ),
            go.Scatter(
                name=f"Projection, {projection.band_label}",
                x=x,
                y=[projection.used, *projection.high],
                mode="lines",
                line={"width": 0, "color": colour},
                fill="tonexty",
                fillcolor=_translucent(colour, 0.18),
                hovertemplate="%{x|%a %d %b}: up to %{y:.2f} GPU-hours<extra></extra>",
            ),
            go.Scatter(
                name="Projection",
                x=x,
                y=[projection.used, *projection.expected],
                mode="lines",
                line={"width": 2, "dash": "dot", "color": colour},
                hovertemplate="%{x|%a %d %b}: %{y:.2f} GPU-hours expected<extra></extra>",
            ),
        ]
    if burn.budget is not None:
        traces.append(
            go.Scatter(
                name="Monthly budget",
                x=[first_day.isoformat(), next_month.isoformat()],
                y=[float(burn.budget)] * 2,
                mode="lines",
                line={"dash": "dash", "color": BUDGET_COLOUR},
                hovertemplate="Budget: %{y:.2f} GPU-hours<extra></extra>",
            )
        )
    figure = go.Figure(traces)
    figure.update_layout(**LAYOUT)
    figure.update_xaxes(range=[first_day.isoformat(), next_month.isoformat()])
    return figure


def _translucent(colour: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r, g, b, alpha)``."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def figure_html(figure: go.Figure, *, div_id: str) -> SafeString:
    """The figure as a ``<div>`` and the inline script that draws it with plotly.js.

    Safe to put in a page: plotly escapes ``<``, ``>`` and ``/`` in the JSON it embeds,
    so a GPU class named ``</script>`` stays text.
    """
    html = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        config=CHART_CONFIG,
        div_id=div_id,
        default_height=f"{CHART_HEIGHT_PX}px",
    )
    return mark_safe(html)  # noqa: S308 - plotly's own escaped output, see above


@dataclass(frozen=True)
class DepartmentUsage:
    """What the department page shows about metered usage."""

    billing_source: str | None
    days: list[dt.date]
    daily_chart: SafeString | None  # None when nothing was metered in those days
    burn_down: selectors.BurnDown
    burn_down_chart: SafeString | None  # None when nothing was metered this month
    month_by_class: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def month_total(self) -> Decimal:
        return sum((hours for _, hours in self.month_by_class), selectors.ZERO)

    @property
    def budget_used_pct(self) -> Decimal | None:
        if not self.burn_down.budget:
            return None
        return self.month_total * 100 / self.burn_down.budget


def department_usage(
    *,
    department: Department,
    now: dt.datetime | None = None,
    rows: selectors.DailyRows | None = None,
    projection: Projection | None = None,
) -> DepartmentUsage:
    """The department page's usage: GPU-hours per day of the last 30 days by GPU class,
    the month's burn-down against the monthly budget, and the month's GPU-hours per class.
    ``rows`` gives the GPU-hours per day and class (see ``selectors.DailyRows``; the
    ledger's by default). A fixed number of queries, whatever the amount of usage."""
    now = now or timezone.now()
    sources = selectors.billing_sources()
    if rows is None:

        def rows(start, end):
            return selectors.daily_gpu_hours_by_class(department=department, start=start, end=end)

    days = last_days(now=now)
    start, end = day_bounds(days[0], days[-1])
    daily_rows = rows(start, end)
    burn = selectors.budget_burn_down(department=department, month=now, rows=rows)
    month_start, month_end = calendar.month_bounds(now)
    month_by_class = _by_class_name(rows(month_start, month_end))
    used_this_month = any(hours for _, hours in month_by_class)
    return DepartmentUsage(
        billing_source=", ".join(source.name for source in sources) or None,
        days=days,
        daily_chart=(
            figure_html(
                daily_gpu_hours_figure(rows=daily_rows, days=days, colours=gpu_class_colours()),
                div_id="chart-daily-gpu-hours",
            )
            if any(row["quantity"] for row in daily_rows)
            else None
        ),
        burn_down=burn,
        burn_down_chart=(
            figure_html(
                burn_down_figure(
                    burn=burn, colour=department_colour(department.pk), projection=projection
                ),
                div_id="chart-budget-burn-down",
            )
            if used_this_month
            else None
        ),
        month_by_class=month_by_class,
    )
