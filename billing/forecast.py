"""Month-end forecasts of GPU-hours, in plain Python (no ORM, no numpy: a few dozen points
need nothing more than ``statistics``).

**The method.** The input is a daily series of portal days (``TIME_ZONE``): each day's
GPU-hours and its length in hours (23 or 25 on the days the clocks change). Each day is
turned into a *rate*, GPU-hours per 24 hours, so a short day is not mistaken for a quiet
one. A straight line ``rate = a + b·t`` (``t`` in days) is fitted to the rates so that
outliers do not drag it:

1. a first fit by Theil-Sen (the median of the pairwise slopes, the median intercept),
   which ignores up to ~29 % of wild points;
2. the points whose residual from the current fit lies beyond ``k · 1.4826 · MAD`` of the
   residuals (``k`` = :data:`TRIM_K`, 3; MAD the median absolute deviation, scaled to a
   normal's sigma) are set aside, and ordinary least squares is fitted to the rest; repeated
   until the points kept stop changing (at most :data:`TRIM_ROUNDS` times).

The rest of the month is projected **hour by hour**: each remaining (part of a) day
contributes its remaining hours × its predicted rate / 24 (a predicted rate below zero
counts as zero), added to what was used so far. The band is the 80 % prediction interval
of that sum under the fitted line: ``± z · sigma · √(Σw² + (Σw)²/n + (Σw·(t-t̄))²/Sxx)``, where
``w`` is each remaining day's share of 24 hours, ``sigma`` the residual standard error of the
least-squares fit, ``n`` the points kept, ``Sxx`` their spread in ``t`` and ``z`` the
normal's 90th percentile (1.2816). It counts day-to-day noise and the uncertainty of the
line itself; it assumes the days' deviations are independent. Its low end is never below
what was already used.

Fewer than :data:`MIN_DAYS_WITH_DATA` days with any use give no forecast
(:class:`Forecast` with ``enough_data`` False and the reason).
"""

import datetime as dt
import math
import statistics
from dataclasses import dataclass, field

MIN_DAYS_WITH_DATA = 7
TRIM_K = 3.0
TRIM_ROUNDS = 5
MAD_TO_SIGMA = 1.4826
BAND_LEVEL = 0.80
Z_BAND = statistics.NormalDist().inv_cdf(0.5 + BAND_LEVEL / 2)  # 1.2816 for 80 %


@dataclass(frozen=True)
class Day:
    """One portal day of the series: its GPU-hours and its length in hours."""

    day: dt.date
    gpu_hours: float
    hours: float = 24.0

    @property
    def rate(self) -> float:
        """GPU-hours per 24 hours."""
        return self.gpu_hours * 24 / self.hours


@dataclass(frozen=True)
class Fit:
    """``rate = intercept + slope · t`` (t: days since ``origin``), with the residual
    standard error of the points kept and those points' ``t``."""

    origin: dt.date
    intercept: float
    slope: float
    sigma: float
    kept: tuple[float, ...]
    trimmed: tuple[dt.date, ...] = ()

    def t(self, day: dt.date) -> float:
        return float((day - self.origin).days)

    def rate(self, day: dt.date) -> float:
        return self.intercept + self.slope * self.t(day)


@dataclass(frozen=True)
class Remaining:
    """A day (or the rest of today) still to come in the month: its hours left."""

    day: dt.date
    hours: float


@dataclass
class Forecast:
    """The month's projection: GPU-hours used so far, the expected month-end total and its
    80 % band, and per remaining day the expected cumulative use (for the chart)."""

    enough_data: bool
    used: float
    reason: str = ""
    expected: float | None = None
    low: float | None = None
    high: float | None = None
    days_with_data: int = 0
    fit: Fit | None = None
    # (day, cumulative GPU-hours at the end of that day: expected, low, high)
    path: list[tuple[dt.date, float, float, float]] = field(default_factory=list)

    @property
    def rest(self) -> float | None:
        return None if self.expected is None else self.expected - self.used


def _theil_sen(ts: list[float], ys: list[float]) -> tuple[float, float]:
    slopes = [
        (ys[j] - ys[i]) / (ts[j] - ts[i])
        for i in range(len(ts))
        for j in range(i + 1, len(ts))
        if ts[j] != ts[i]
    ]
    slope = statistics.median(slopes) if slopes else 0.0
    intercept = statistics.median(y - slope * t for t, y in zip(ts, ys, strict=True))
    return intercept, slope


def _least_squares(ts: list[float], ys: list[float]) -> tuple[float, float]:
    mean_t, mean_y = statistics.fmean(ts), statistics.fmean(ys)
    sxx = sum((t - mean_t) ** 2 for t in ts)
    if sxx == 0:
        return mean_y, 0.0
    slope = sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True)) / sxx
    return mean_y - slope * mean_t, slope


def _outliers(residuals: list[float], scale: float) -> list[bool]:
    """Which residuals lie beyond ``TRIM_K`` robust standard deviations of their median.
    With a MAD of zero (most points on the line exactly), any point off it is one; a
    tolerance relative to the data keeps float noise from counting."""
    centre = statistics.median(residuals)
    mad = statistics.median(abs(r - centre) for r in residuals)
    limit = max(TRIM_K * MAD_TO_SIGMA * mad, 1e-9 * max(scale, 1.0))
    return [abs(r - centre) > limit for r in residuals]


def fit_rates(days: list[Day]) -> Fit:
    """The robust line through the days' rates (see the module's docstring)."""
    origin = days[0].day
    ts = [float((d.day - origin).days) for d in days]
    ys = [d.rate for d in days]
    scale = max(abs(y) for y in ys)
    intercept, slope = _theil_sen(ts, ys)
    keep = [True] * len(days)
    for _ in range(TRIM_ROUNDS):
        residuals = [y - (intercept + slope * t) for t, y in zip(ts, ys, strict=True)]
        new_keep = [not out for out in _outliers(residuals, scale)]
        if sum(new_keep) < 2:
            break
        kept_t = [t for t, k in zip(ts, new_keep, strict=True) if k]
        kept_y = [y for y, k in zip(ys, new_keep, strict=True) if k]
        intercept, slope = _least_squares(kept_t, kept_y)
        if new_keep == keep:
            break
        keep = new_keep
    kept_t = [t for t, k in zip(ts, keep, strict=True) if k]
    kept_y = [y for y, k in zip(ys, keep, strict=True) if k]
    dof = len(kept_t) - 2
    ssr = sum((y - intercept - slope * t) ** 2 for t, y in zip(kept_t, kept_y, strict=True))
    sigma = math.sqrt(ssr / dof) if dof > 0 else 0.0
    if sigma < 1e-9 * max(scale, 1.0):
        sigma = 0.0  # an exact line: float noise is not spread
    return Fit(
        origin=origin,
        intercept=intercept,
        slope=slope,
        sigma=sigma,
        kept=tuple(kept_t),
        trimmed=tuple(d.day for d, k in zip(days, keep, strict=True) if not k),
    )


def project(*, history: list[Day], used: float, remaining: list[Remaining]) -> Forecast:
    """The month-end forecast from ``history`` (complete portal days before today, oldest
    first, the days before the first use left out by the caller or not: they are skipped
    here), ``used`` (GPU-hours of the month so far) and ``remaining`` (today's hours left,
    then each later day of the month with its length)."""
    first = next((i for i, d in enumerate(history) if d.gpu_hours > 0), None)
    series = history[first:] if first is not None else []
    days_with_data = sum(1 for d in series if d.gpu_hours > 0)
    if days_with_data < MIN_DAYS_WITH_DATA:
        return Forecast(
            enough_data=False,
            used=used,
            days_with_data=days_with_data,
            reason=(
                f"Too little data to forecast: {days_with_data} day"
                f"{'' if days_with_data == 1 else 's'} with use in the last {len(history)}, "
                f"and a forecast needs {MIN_DAYS_WITH_DATA}."
            ),
        )
    fit = fit_rates(series)
    n = len(fit.kept)
    mean_t = statistics.fmean(fit.kept)
    sxx = sum((t - mean_t) ** 2 for t in fit.kept)
    expected, sum_w, sum_w2, sum_wt = used, 0.0, 0.0, 0.0
    steps = []
    for piece in remaining:
        w = piece.hours / 24
        expected += w * max(0.0, fit.rate(piece.day))
        sum_w += w
        sum_w2 += w * w
        sum_wt += w * (fit.t(piece.day) - mean_t)
        variance = sum_w2 + sum_w**2 / n + (sum_wt**2 / sxx if sxx else 0.0)
        half = Z_BAND * fit.sigma * math.sqrt(variance)
        steps.append((piece.day, expected, max(used, expected - half), expected + half))
    low, high = (steps[-1][2], steps[-1][3]) if steps else (used, used)
    return Forecast(
        enough_data=True,
        used=used,
        expected=expected,
        low=low,
        high=high,
        days_with_data=days_with_data,
        fit=fit,
        path=steps,
    )


def crossing(forecast: Forecast, *, budget: float, start: dt.date) -> tuple[dt.date, float] | None:
    """The day the expected cumulative use first reaches ``budget``, and the GPU-hours at
    the end of that day; None when it stays under it through the month. A budget already
    spent is not a crossing to come (the caller has the actual day)."""
    if not forecast.enough_data or forecast.used >= budget:
        return None
    for day, expected, _, _ in forecast.path:
        if day >= start and expected >= budget - 1e-9:
            return day, expected
    return None
