"""billing.forecast on fixed series with known answers: flat, linear growth, a spike the
robust fit ignores, too little data, days of 23 and 25 hours, and the exact day a linear
series runs through a budget."""

import datetime as dt
import random

import pytest

from billing import forecast

DEC_1 = dt.date(2026, 12, 1)


def history(values, *, end=DEC_1, hours=None):
    """Daily GPU-hours ending the day before ``end``, oldest first."""
    n = len(values)
    return [
        forecast.Day(end - dt.timedelta(days=n - i), v, (hours or {}).get(i, 24.0))
        for i, v in enumerate(values)
    ]


def december(*, first: int = 1):
    return [forecast.Remaining(dt.date(2026, 12, d), 24.0) for d in range(first, 32)]


def test_a_flat_series_projects_its_level_with_no_band():
    result = forecast.project(history=history([48.0] * 30), used=0.0, remaining=december())
    assert result.enough_data
    assert result.expected == pytest.approx(31 * 48)
    assert (result.low, result.high) == (pytest.approx(31 * 48), pytest.approx(31 * 48))


def test_linear_growth_is_followed_exactly():
    # 10, 12, ... over November: on December's days (t = 30..60) the rate is 70..130.
    result = forecast.project(
        history=history([10.0 + 2 * i for i in range(30)]), used=0.0, remaining=december()
    )
    assert result.fit.slope == pytest.approx(2.0)
    assert result.expected == pytest.approx(sum(70 + 2 * i for i in range(31)))  # 3100
    assert result.high - result.low == pytest.approx(0.0)


def test_a_spike_is_set_aside_by_the_robust_fit():
    values = [100.0] * 30
    values[20] = 900.0
    result = forecast.project(history=history(values), used=0.0, remaining=december())
    assert result.fit.trimmed == (DEC_1 - dt.timedelta(days=10),)
    assert result.expected == pytest.approx(3100.0)
    # Plain least squares would have been dragged up by 800 / 30 a day.
    assert result.expected < 3100.0 + 1


def test_noise_gives_a_band_around_the_level_that_widens_with_the_days_to_come():
    rng = random.Random(7)  # noqa: S311 - a fixed series, not a secret
    values = [100.0 + rng.gauss(0, 10) for _ in range(30)]
    whole = forecast.project(history=history(values), used=0.0, remaining=december())
    late = forecast.project(history=history(values), used=2500.0, remaining=december(first=27))
    assert whole.low < whole.expected < whole.high
    assert (late.high - late.low) < (whole.high - whole.low) / 2
    # The low end never drops below what was used already.
    assert late.low >= 2500.0


def test_about_80_percent_of_bands_hold_what_then_happens():
    rng = random.Random(11)  # noqa: S311 - a fixed series, not a secret
    held = 0
    for _ in range(200):
        past = [100.0 + rng.gauss(0, 10) for _ in range(30)]
        future = sum(100.0 + rng.gauss(0, 10) for _ in range(31))
        result = forecast.project(history=history(past), used=0.0, remaining=december())
        held += result.low <= future <= result.high
    assert 0.70 <= held / 200 <= 0.90


def test_too_little_data_gives_no_forecast_and_says_so():
    values = [0.0] * 24 + [5.0] * 6  # six days with use
    result = forecast.project(history=history(values), used=30.0, remaining=december())
    assert not result.enough_data
    assert result.expected is None
    assert result.days_with_data == 6
    assert "6 days with use" in result.reason and "needs 7" in result.reason


def test_days_before_the_first_use_are_not_zeros_of_the_series():
    values = [0.0] * 20 + [24.0] * 10
    result = forecast.project(history=history(values), used=0.0, remaining=december())
    assert result.expected == pytest.approx(31 * 24)


def test_a_25_hour_day_is_not_a_busier_day_and_the_projection_counts_hours():
    # A constant 2 GPUs: 48 GPU-hours a day, 50 on the 25-hour day of the clock change.
    values = [48.0] * 30
    values[5] = 50.0
    past = history(values, hours={5: 25.0})
    remaining = [forecast.Remaining(dt.date(2026, 10, d), 24.0) for d in range(1, 32)]
    remaining[24] = forecast.Remaining(dt.date(2026, 10, 25), 25.0)
    result = forecast.project(history=past, used=0.0, remaining=remaining)
    assert result.fit.trimmed == ()
    assert result.expected == pytest.approx(2 * 745)  # October: 745 hours in Berlin


def test_a_linear_series_runs_out_on_the_exact_day():
    result = forecast.project(
        history=history([10.0 + 2 * i for i in range(30)]), used=0.0, remaining=december()
    )
    # End of 12 Dec: 70 + 72 + ... + 92 = 972; end of 13 Dec: 1066.
    day, cumulative = forecast.crossing(result, budget=1000.0, start=DEC_1)
    assert day == dt.date(2026, 12, 13)
    assert cumulative == pytest.approx(1066.0)
    assert forecast.crossing(result, budget=5000.0, start=DEC_1) is None
