"""Alerts that look ahead: a monthly GPU-hour budget whose month-end *forecast* crosses
one of its thresholds before use does, and a day of unusual spend.

Each is recorded once (:class:`billing.models.ForecastAlert` per quota, month and
threshold; :class:`billing.models.SpendAnomaly` per department and day: unique
constraints) and told to the department's managers through :func:`_announce`, the one
place that delivers them.
"""

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import anomalies, foresight, notifications, services
from billing.models import ForecastAlert, SpendAnomaly
from core import calendar
from departments import selectors as department_selectors
from departments.models import Department

logger = logging.getLogger(__name__)
ANOMALY_DAYS_CHECKED = 3  # the last complete days looked at (a missed run catches up)


def _announce(department: Department, event_key: str, subject: str, text: str, data: dict):
    """Tell ``department``'s managers and its alert channels, after the transaction
    commits; returns the managers told.
    ``event_key`` names the event once and for all (``forecast:<quota>:<month>:<pct>``,
    ``anomaly:<department>:<day>``); ``data`` carries its figures for channels that want
    them. Mail is a courtesy: the record is the alert."""
    recipients = department_selectors.manager_emails(department.pk)

    def deliver() -> None:
        try:
            send_mail(f"[GPU portal] {subject}", text, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception:
            logger.exception("Could not mail %s (%s)", event_key, subject)

    if recipients:
        transaction.on_commit(deliver)
    # And to the department's alert channels (webhooks, extra addresses), once per event.
    notifications.notify(
        department=department, event_key=event_key, subject=subject, text=text, data=data
    )
    return recipients


def _hours(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.001"))


def forecast_alerts_send(*, now: dt.datetime | None = None) -> list[ForecastAlert]:
    """Record and announce each threshold of a monthly GPU-hour budget (a department's,
    or one GPU class's of it) that this month's expected month-end use reaches while the
    use so far has not: once per quota, month and threshold. Returns the new alerts."""
    now = now or timezone.now()
    month = calendar.month_of(now)
    period = services.period_for_reading(month=month)
    created = []
    for row in foresight.forecasts(user=None, period=period, now=now):
        quota, p = row.quota, row.projection
        if quota is None or not p.enough_data or not quota.department.active:
            continue
        limit = float(quota.limit)
        for threshold in sorted(set(quota.alert_thresholds_pct or [])):
            level = limit * threshold / 100
            if not (p.expected >= level > p.used):
                continue
            key = f"forecast:{quota.pk}:{month:%Y-%m}:{threshold}"
            scope = f" on {row.gpu_class.name}" if row.gpu_class else ""
            runs_out = (
                f" At this pace the budget runs out on {row.runs_out_on:%d %b}."
                if row.runs_out_on
                else ""
            )
            subject = (
                f"{quota.department}: GPU-hours{scope} heading for {threshold} % of the "
                f"budget by {month:%B}'s end"
            )
            text = (
                f"{quota.department} has used {p.used:.2f} of its {quota.limit_text} GPU-hours"
                f"{scope} this month. The month-end forecast is {p.expected:.2f} GPU-hours "
                f"(80 % band {p.low:.2f}-{p.high:.2f}), past {threshold} % of the budget."
                f"{runs_out}\n"
            )
            try:
                with transaction.atomic():
                    alert = ForecastAlert.objects.create(
                        quota=quota,
                        period=f"{month:%Y-%m}",
                        threshold_pct=threshold,
                        expected_gpu_hours=_hours(p.expected),
                        low_gpu_hours=_hours(p.low),
                        high_gpu_hours=_hours(p.high),
                        used_gpu_hours=_hours(p.used),
                        limit=quota.limit,
                        runs_out_on=row.runs_out_on,
                    )
                    alert.recipients = _announce(
                        quota.department,
                        key,
                        subject,
                        text,
                        {
                            "quota": quota.pk,
                            "period": f"{month:%Y-%m}",
                            "threshold_pct": threshold,
                            "expected_gpu_hours": str(alert.expected_gpu_hours),
                            "runs_out_on": row.runs_out_on.isoformat() if row.runs_out_on else None,
                        },
                    )
                    alert.save(update_fields=["recipients"])
            except IntegrityError:
                continue  # told already
            created.append(alert)
    return created


def spend_anomalies_send(*, now: dt.datetime | None = None) -> list[SpendAnomaly]:
    """Record and announce the days of unusual spend among the last complete portal days:
    once per department and day. Returns the new records."""
    now = now or timezone.now()
    today = now.astimezone(calendar.portal_zone()).date()
    days = [today - dt.timedelta(days=n) for n in range(ANOMALY_DAYS_CHECKED, 0, -1)]
    # The days judged and the window before them are priced at their months' rates.
    month = calendar.month_of(days[0] - dt.timedelta(days=anomalies.WINDOW_DAYS))
    while month <= calendar.month_of(days[-1]):
        services.period_for_reading(month=month)
        month = calendar.next_month(month)
    created = []
    for found in foresight.spend_anomalies(user=None, days=days):
        a = found.anomaly
        if SpendAnomaly.objects.filter(department=found.department, day=a.day).exists():
            continue
        try:
            with transaction.atomic():
                record = SpendAnomaly.objects.create(
                    department=found.department,
                    day=a.day,
                    amount=a.amount.quantize(Decimal("0.0001")),
                    usual=a.usual.quantize(Decimal("0.0001")),
                    currency=found.currency,
                )
                record.recipients = _announce(
                    found.department,
                    f"anomaly:{found.department.pk}:{a.day.isoformat()}",
                    f"{found.department}: unusual spend on {a.day:%d %b}",
                    f"{found.department}'s spend: {found.text}.\n",
                    {
                        "day": a.day.isoformat(),
                        "amount": str(record.amount),
                        "usual": str(record.usual),
                        "currency": found.currency,
                    },
                )
                record.save(update_fields=["recipients"])
        except IntegrityError:
            continue
        created.append(record)
    return created
