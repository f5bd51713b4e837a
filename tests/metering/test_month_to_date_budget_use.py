"""A monthly GPU-hours budget counts the billing source's metered GPU-hours of the
department's calendar month in the portal's time zone, narrowed like the quota."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from core.calendar import month_bounds
from departments.models import QuotaKind
from metering.selectors import quota_metered_gpu_hours
from tests.factories import MetricSourceFactory, QuotaFactory, UsageRecordFactory

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def ledger(world):
    """GPU-hours for marketing around the start of November 2026 (Berlin is UTC+1 then)."""

    def add(source_name, hour_start, gpu_hours, *, gpu_class=world.t4, department=world.marketing):
        UsageRecordFactory(
            source=MetricSourceFactory(name=source_name),
            hour_start=hour_start,
            department=department,
            gpu_class=gpu_class,
            gpu_hours=Decimal(gpu_hours),
        )

    utc = dt.UTC
    add("allocation", dt.datetime(2026, 10, 31, 22, tzinfo=utc), "7")  # 23:00 Oct 31 Berlin
    add("allocation", dt.datetime(2026, 10, 31, 23, tzinfo=utc), "2")  # 00:00 Nov 1 Berlin
    add("allocation", dt.datetime(2026, 11, 10, 9, tzinfo=utc), "3", gpu_class=world.a100)
    add("allocation", dt.datetime(2026, 11, 30, 22, tzinfo=utc), "1")  # 23:00 Nov 30 Berlin
    add("allocation", dt.datetime(2026, 11, 30, 23, tzinfo=utc), "50")  # December in Berlin
    add("device", dt.datetime(2026, 11, 10, 9, tzinfo=utc), "100")  # not the billing source
    add("allocation", dt.datetime(2026, 11, 10, 9, tzinfo=utc), "40", department=world.training)


def test_month_to_date_counts_the_billing_source_in_the_portal_month(world, ledger, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    budget = QuotaFactory(department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=100)
    at = dt.datetime(2026, 11, 20, tzinfo=BERLIN)
    assert quota_metered_gpu_hours(quota=budget, at=at) == Decimal("6")  # 2 + 3 + 1


def test_a_budget_narrowed_to_a_gpu_class_counts_only_that_class(world, ledger, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    budget = QuotaFactory(
        department=world.marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=100, gpu_class=world.a100
    )
    assert quota_metered_gpu_hours(quota=budget, at=dt.datetime(2026, 11, 20, tzinfo=BERLIN)) == 3


def test_a_budget_narrowed_to_a_job_kind_has_no_metered_part(world, ledger, settings):
    budget = QuotaFactory(
        department=world.marketing,
        kind=QuotaKind.GPU_HOURS_MONTH,
        limit=100,
        job_kind="lipsync-render",
    )
    assert quota_metered_gpu_hours(quota=budget, at=dt.datetime(2026, 11, 20, tzinfo=BERLIN)) == 0


def test_other_quota_kinds_are_not_counted_in_gpu_hours(world):
    with pytest.raises(ValueError, match="gpu_hours_month"):
        quota_metered_gpu_hours(quota=world.marketing_quota)


def test_a_month_with_a_daylight_saving_change_has_one_hour_more_or_less(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    october = month_bounds(dt.date(2026, 10, 5))
    march = month_bounds(dt.date(2026, 3, 5))
    assert (october[1] - october[0]) == dt.timedelta(hours=745)
    assert (march[1] - march[0]) == dt.timedelta(hours=743)
    assert october[0].astimezone(dt.UTC) == dt.datetime(2026, 9, 30, 22, tzinfo=dt.UTC)
    december = month_bounds(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC))
    assert december[0] == dt.datetime(2027, 1, 1, tzinfo=BERLIN)  # already January in Berlin
