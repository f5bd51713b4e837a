"""GPU time, kept exact and shown as people write it.

The ledger, the job records and the statements keep GPU time in GPU-seconds: a
per-minute sample of a pod's GPUs is a whole number of GPU-seconds (60 per GPU), a job's
time is kept to the millisecond, and sums of them are exact. GPU-hours are computed from
them only to price (``seconds × price / 3600``, then rounded to the currency's minor unit)
and to show, rounded half-up to :data:`GPU_HOURS_SHOWN` (0.01 GPU-hour, 36 GPU-seconds):
``758.95``, never ``758.949999``.
"""

from decimal import ROUND_HALF_UP, Decimal

SECONDS_PER_HOUR = Decimal(3600)
# The precision GPU-hours are shown with on pages, statements, PDFs, CSV and XLSX.
GPU_HOURS_SHOWN = Decimal("0.01")
# The precision GPU-seconds are kept with (the ledger's and statements' decimal places).
GPU_SECONDS_KEPT = Decimal("0.000001")


def gpu_hours(seconds: Decimal | int | None) -> Decimal:
    """``seconds`` as GPU-hours, unrounded (28 significant digits): for arithmetic."""
    return Decimal(seconds or 0) / SECONDS_PER_HOUR


def gpu_hours_shown(seconds: Decimal | int | None) -> Decimal:
    """``seconds`` as GPU-hours rounded half-up to :data:`GPU_HOURS_SHOWN`."""
    return gpu_hours(seconds).quantize(GPU_HOURS_SHOWN, rounding=ROUND_HALF_UP)


def gpu_hours_text(seconds: Decimal | int | None) -> str:
    """``seconds`` as GPU-hours written out: ``12.50``, ``758.95``."""
    return f"{gpu_hours_shown(seconds):f}"


def gpu_seconds(hours: Decimal | int | str) -> Decimal:
    """GPU-hours as GPU-seconds, kept to :data:`GPU_SECONDS_KEPT`."""
    return (Decimal(hours) * SECONDS_PER_HOUR).quantize(GPU_SECONDS_KEPT, rounding=ROUND_HALF_UP)
