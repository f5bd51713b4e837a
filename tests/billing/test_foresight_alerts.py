"""The periodic alerts that look ahead: a budget the forecast crosses before use does, and
a day of unusual spend, each recorded and mailed to the managers once."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from billing import foresight_alerts
from billing.models import ForecastAlert, SpendAnomaly
from core import calendar
from metering.models import MetricSource
from tests.billing.test_forecast_pages_and_api import pace  # noqa: F401 - a fixture
from tests.factories import RateCardFactory, UsageRecordFactory


def test_a_forecast_past_the_budgets_thresholds_is_told_once(
    world,
    pace,  # noqa: F811 - the fixture imported above
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        alerts = foresight_alerts.forecast_alerts_send()
    assert sorted(a.threshold_pct for a in alerts) == [80, 100]
    alert = next(a for a in alerts if a.threshold_pct == 100)
    assert alert.runs_out_on == pace["runs_out_on"]
    assert alert.used_gpu_hours < alert.limit <= alert.expected_gpu_hours
    assert len(mailoutbox) == 2
    assert "heading for 100 % of the budget" in " ".join(m.subject for m in mailoutbox)
    assert mailoutbox[0].to == [world.user("manager").email]
    with django_capture_on_commit_callbacks(execute=True):
        assert foresight_alerts.forecast_alerts_send() == []
    assert len(mailoutbox) == 2
    assert ForecastAlert.objects.count() == 2


def test_a_day_of_unusual_spend_is_recorded_and_told_once(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("10.00"))
    source = MetricSource.objects.get(is_billing=True)
    today = timezone.now().astimezone(calendar.portal_zone()).date()
    yesterday = today - dt.timedelta(days=1)
    for n in range(1, 32):
        day = today - dt.timedelta(days=n)
        start, _ = calendar.day_bounds(day, day)
        UsageRecordFactory(
            source=source,
            department=world.marketing,
            gpu_class=world.a100,
            hour_start=start + dt.timedelta(hours=12),  # noon: not off-peak
            gpu_hours=Decimal(40 if day == yesterday else 10 + n % 3),
        )
    with django_capture_on_commit_callbacks(execute=True):
        (record,) = foresight_alerts.spend_anomalies_send()
    assert record.day == yesterday and record.amount == Decimal("400.0000")
    assert record.usual == Decimal("110.0000")
    assert len(mailoutbox) == 1 and "+264 %" in mailoutbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        assert foresight_alerts.spend_anomalies_send() == []
    assert SpendAnomaly.objects.count() == 1 and len(mailoutbox) == 1
