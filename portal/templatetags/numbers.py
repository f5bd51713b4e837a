"""How numbers read on every page: ``{% load numbers %}``.

One way each, so a figure reads the same on the dashboard, a statement and a job:
multipliers ``×0.6``, counts with their noun (``2 jobs``), waits and runtimes in hours,
minutes and seconds (``1 h 05 min``, ``45 s``), GPU-hours to 0.01 (``1,234.50``), budgets
and limits as they were set (``1,200``), per cents to 0.1 (``8.0 %``), money to its
currency's minor unit with the currency (``1,234.50 EUR``, as the PDF writes it) and unit
prices with their currency, as precise as they were set (``0.5525 EUR``).
"""

from decimal import ROUND_HALF_UP, Decimal

from django import template

from billing.exports import money_text
from billing.models import minor_unit
from metering.quantities import GPU_HOURS_SHOWN

register = template.Library()


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


@register.filter
def multiplier(value) -> str:
    """``×0.6``, ``×1``, ``×1.25`` (never 0.600)."""
    number = _decimal(value)
    return "" if number is None else f"×{number.normalize():f}"


@register.filter
def gpu_hours(value) -> str:
    """GPU-hours rounded half-up to 0.01, thousands separated: ``1,234.50``."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number.quantize(GPU_HOURS_SHOWN, rounding=ROUND_HALF_UP):,f}"


@register.filter
def money(value, currency: str) -> str:
    """``1,234.50 EUR``, ``1,235 JPY``: half-up to the currency's minor unit."""
    number = _decimal(value)
    return "" if number is None else money_text(number, currency)


@register.filter
def unit_price(value, currency: str) -> str:
    """A price per unit with its currency, to the currency's minor unit or as precise as it
    was set (rate cards keep four decimals): ``0.55 EUR``, ``0.5525 EUR``, ``1,500.00 EUR``."""
    number = _decimal(value)
    if number is None:
        return ""
    minor = minor_unit(currency)
    shown = number.quantize(minor) if number == number.quantize(minor) else number.normalize()
    return f"{shown:,f} {currency}"


@register.filter
def limit(value) -> str:
    """A budget or a limit as it was set, thousands separated: ``1,200``, ``0.5``."""
    number = _decimal(value)
    return "" if number is None else f"{number.normalize():,f}"


@register.filter
def percent(value) -> str:
    """A share already in per cent, half-up to 0.1: ``8.0 %``, ``112.5 %``."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):,f} %"


@register.filter
def use_of(value, quota) -> str:
    """A quota's use against its limit, in the limit's unit: ``49.98 of 1,200 GPU-hours``,
    ``2 of 4,000 jobs``, ``0 of 1 job``. ``quota`` has ``limit`` and ``unit``."""
    number = _decimal(value)
    if number is None:
        return ""
    unit = quota.unit
    used = gpu_hours(number) if unit == "GPU-hours" else limit(number)
    if quota.limit == 1 and unit.endswith("s"):
        unit = unit[:-1]
    return f"{used} of {limit(quota.limit)} {unit}".rstrip()


@register.filter
def duration(seconds) -> str:
    """A wait or a runtime: ``45 s``, ``2 min 05 s``, ``12 min``, ``1 h 05 min`` (from an
    hour on, to the nearest minute)."""
    number = _decimal(seconds)
    if number is None:
        return ""
    total = int(number.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, rest = divmod(total, 60)
        return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    hours, minutes = divmod((total + 30) // 60, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def quantity(value, unit: str) -> str:
    """An amount of a quota's ``unit``: whole jobs and GPUs as counts (``1 job``,
    ``2 jobs``, ``3 GPUs``), GPU-hours to 0.01 (``0.50 GPU-hours``)."""
    number = _decimal(value)
    if number is None:
        return ""
    if unit == "GPU-hours":
        return f"{gpu_hours(number)} {unit}"
    if number == number.to_integral_value():
        count = int(number)
        noun = unit[:-1] if count == 1 and unit.endswith("s") else unit
        return f"{count:,} {noun}".rstrip()
    return f"{number.normalize():f} {unit}".rstrip()
