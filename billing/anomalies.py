"""Days whose spend lies far outside a department's recent behaviour, in plain Python (no
ORM).

A day is an anomaly when ``|x - median| > k · 1.4826 · MAD`` over the :data:`WINDOW_DAYS`
days before it (the median and the median absolute deviation of those days, MAD scaled to
a normal's sigma), **and** ``|x - median|`` is at least a minimum amount
(``BILLING_ANOMALY_MIN_AMOUNT``, 50 in the billing currency by default), so that a small
department's 3 EUR day after a run of 1 EUR days does not flap. ``k`` =
:data:`THRESHOLD_K` (5: far outside, not merely unusual; with a normal's noise a day
passes 3.5 sigma about once in four years). A day is judged only when at least
:data:`MIN_WINDOW_DAYS` days before it are known (days with no spend count, as zero).
"""

import datetime as dt
import statistics
from dataclasses import dataclass
from decimal import Decimal

WINDOW_DAYS = 28
MIN_WINDOW_DAYS = 14
THRESHOLD_K = Decimal(5)
MAD_TO_SIGMA = Decimal("1.4826")


@dataclass(frozen=True)
class Anomaly:
    day: dt.date
    amount: Decimal
    usual: Decimal  # the median of the window
    mad: Decimal

    @property
    def change(self) -> Decimal | None:
        """The change against the usual day, as a fraction (2.3 for +230 %); None when
        the usual day spent nothing."""
        return None if not self.usual else (self.amount - self.usual) / self.usual


def find(
    series: dict[dt.date, Decimal],
    *,
    days: list[dt.date],
    minimum: Decimal,
    first: dt.date | None = None,
) -> list[Anomaly]:
    """The anomalies among ``days``, judged against ``series`` (spend per day; a day
    missing from it spent nothing). Days before ``first`` (the department's first spend)
    are not part of any window."""
    found = []
    for day in days:
        window = [
            day - dt.timedelta(days=offset)
            for offset in range(WINDOW_DAYS, 0, -1)
            if first is None or day - dt.timedelta(days=offset) >= first
        ]
        if len(window) < MIN_WINDOW_DAYS:
            continue
        values = [series.get(d, Decimal(0)) for d in window]
        usual = statistics.median(values)
        mad = statistics.median(abs(v - usual) for v in values)
        amount = series.get(day, Decimal(0))
        deviation = abs(amount - usual)
        if deviation > THRESHOLD_K * MAD_TO_SIGMA * mad and deviation >= minimum:
            found.append(Anomaly(day=day, amount=amount, usual=Decimal(usual), mad=Decimal(mad)))
    return found
