"""SLA compliance is "met" only when every promise the SLA makes was measured and kept.
A figure with nothing to measure (no job started, no latency recorded) makes the month's
compliance "no data" (null in the API), never "met"; a promise measured and broken is
"missed" whatever the others say."""

import datetime as dt
import re
from decimal import Decimal

import pytest

from billing import selectors, services
from jobs.models import GenerationJob
from metering.models import MetricSource
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

MARCH = dt.date(2026, 3, 1)


def latency_of_marketing(world, ms: int) -> None:
    """Marketing's SLA promises 800 ms; its requests took ``ms`` in March."""
    world.marketing_sla.latency_target_ms = 800
    world.marketing_sla.save()
    factories.UsageRecordFactory(
        source=MetricSource.objects.get(name="latency"),
        department=world.marketing,
        namespace="dept-marketing",
        gpu_model="",
        hour_start=hour(3, 0),
        quantity=Decimal(ms),
    )


def batch_job_of_marketing(world, *, waited_s: int) -> None:
    job = factories.GenerationJobFactory(department=world.marketing, tier="batch")
    GenerationJob.objects.filter(pk=job.pk).update(
        submitted_at=hour(2, 10),
        started_at=hour(2, 10) + dt.timedelta(seconds=waited_s),
        state="succeeded",
    )


def marketing_row(world) -> selectors.ReportRow:
    period = services.period_refresh(month=MARCH)
    report = selectors.chargeback_report(user=world.user("finance"), period=period)
    return next(row for row in report.rows if row.department == world.marketing)


def test_a_month_without_jobs_is_no_data_though_its_latency_was_kept(world, api_client):
    latency_of_marketing(world, 300)

    row = marketing_row(world)
    assert [(f.measured, f.met) for f in row.latency] == [(300, True)]
    assert [(f.measured, f.met) for f in row.queue_wait] == [(None, None)]
    assert row.sla_met is None

    response = client_as(api_client, world, "finance").get(
        "/api/v1/reports/chargeback/", {"period": "2026-03"}
    )
    (marketing,) = [r for r in response.json()["rows"] if r["department"] == "marketing"]
    assert marketing["sla_met"] is None
    assert marketing["queue_wait"][0]["met"] is None

    page = client_as(api_client, world, "finance").get("/billing/", {"period": "2026-03"})
    cell = re.search(
        r'<a href="/departments/marketing/">Marketing</a></td>(.*?)</tr>',
        page.content.decode(),
        re.S,
    ).group(1)
    assert "no data" in cell and "sla-none" in cell
    assert "✓ met" not in cell


@pytest.mark.parametrize("latency_ms", [None, 300])
def test_a_promise_broken_is_missed_whatever_the_others_say(world, latency_ms):
    if latency_ms is not None:
        latency_of_marketing(world, latency_ms)
    else:
        world.marketing_sla.latency_target_ms = 800
        world.marketing_sla.save()
    batch_job_of_marketing(world, waited_s=7200)  # against an hour

    assert marketing_row(world).sla_met is False


def test_every_promise_measured_and_kept_is_met(world):
    latency_of_marketing(world, 300)
    batch_job_of_marketing(world, waited_s=60)

    assert marketing_row(world).sla_met is True


def test_a_latency_promise_without_any_reading_is_no_data(world):
    world.marketing_sla.latency_target_ms = 800
    world.marketing_sla.save()
    batch_job_of_marketing(world, waited_s=60)

    row = marketing_row(world)
    assert [(f.measured, f.met) for f in row.latency] == [(None, None)]
    assert row.sla_met is None
