"""One bill for every GPU-hour: namespace workloads from the allocation ledger, portal jobs
from the workers' own GPU time, charged to the departments that submitted them, and the
rest of each worker pool's allocation as pool idle, under the month's idle policy.

The fleet: 2 A100 at 2.00 EUR per GPU-hour over March 2026 (744 hours: 2976.00 EUR of
capacity). On 2 March at 10:00 marketing's namespace holds 1 GPU; the worker pool
``gpu-workers`` holds 1 GPU for the hour, in which marketing's render used half an hour and
training's a quarter: 0.25 GPU-hours of the pool stood idle.
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing import selectors, services
from billing.models import (
    BillingPeriod,
    IdlePolicy,
    LineKind,
    Statement,
    StatementLine,
    WorkerPoolHour,
)
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)
POOL = "gpu-workers"


@pytest.fixture
def month(fleet, ledger, jobs):
    a100, marketing, training = fleet
    factories.WorkerPoolFactory(namespace=POOL)
    ledger.add(at=hour(2, 10), gpu_hours="1", department=marketing, gpu_class=a100)
    ledger.add(at=hour(2, 10), gpu_hours="1", gpu_class=a100, namespace=POOL)
    render = jobs.run(
        department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 10) + MIN * 30
    )
    lesson = jobs.run(
        department=training,
        gpu_class=a100,
        tier="batch",
        start=hour(2, 10) + MIN * 40,
        end=hour(2, 10) + MIN * 55,
        kind=factories.JobKindFactory(slug="lesson", name="Lesson"),
    )
    return a100, marketing, training, render, lesson


MIN = dt.timedelta(minutes=1)


def _refresh(policy=IdlePolicy.ABSORBED, department=None) -> BillingPeriod:
    BillingPeriod.objects.update_or_create(
        month=MARCH, defaults={"idle_policy": policy, "idle_department": department}
    )
    return services.period_refresh(month=MARCH, force=True)


def _lines(period, kind):
    return list(StatementLine.objects.filter(period=period, kind=kind).order_by("pk"))


def test_jobs_are_charged_to_their_departments_and_the_pool_rest_is_idle(month):
    _a100, marketing, training, render, _lesson = month
    period = _refresh()

    statement = Statement.objects.get(period=period, department=marketing)
    portal, usage = statement.lines.filter(kind__in=["usage", "jobs"]).order_by("kind")
    assert (portal.kind, portal.gpu_seconds, portal.amount) == ("jobs", 1800, Decimal("1.00"))
    assert portal.description == (
        "0.50 GPU-hours of A100 (interactive) × 2.00 EUR, portal jobs: Lip-sync render × 1"
    )
    assert (portal.job_kind.slug, portal.jobs_count, portal.tier) == (
        "lipsync-render",
        1,
        "interactive",
    )
    assert list(portal.jobs.values_list("job_id", "gpu_seconds")) == [(render.pk, 1800)]
    assert (usage.kind, usage.amount) == ("usage", Decimal("2.00"))
    assert usage.description.endswith(", namespace workloads: dept-marketing")
    assert (statement.total, statement.gpu_hours) == (Decimal("3.00"), Decimal("1.50"))

    (training_jobs,) = _lines(period, LineKind.JOBS)[1:]
    assert (training_jobs.department, training_jobs.tier, training_jobs.amount) == (
        training,
        "batch",
        Decimal("0.50"),
    )
    # The pool's allocation is no department's usage and not Unallocated: its jobs' time
    # is billed, its rest is pool idle, a line of the period (absorbed by IT).
    assert period.unallocated_amount == 0
    (idle,) = _lines(period, LineKind.POOL_IDLE)
    assert (idle.statement, idle.gpu_seconds, idle.amount) == (None, 900, Decimal("0.50"))
    assert (
        idle.description == "Idle in worker pool gpu-workers, A100: 0.25 GPU-hours, absorbed by IT"
    )
    assert (period.pool_idle_gpu_seconds, period.pool_idle_amount) == (900, Decimal("0.50"))
    # Fleet idle: 2 GPUs all month, less the hour's 1 of marketing and 1 of the pool.
    assert period.idle_gpu_hours == Decimal("1486.00")
    assert (period.capacity_amount, period.idle_amount) == (Decimal("2976.00"), Decimal("2972.00"))


def test_the_month_reconciles_with_pool_idle_to_the_cent(month):
    period = _refresh()
    figures = selectors.reconciliation(period=period)
    assert (figures.departments_usage, figures.unallocated, figures.pool_idle, figures.idle) == (
        Decimal("3.50"),
        Decimal("0"),
        Decimal("0.50"),
        Decimal("2972.00"),
    )
    assert figures.total == figures.capacity == period.capacity_amount
    assert figures.difference == 0


def test_each_pool_hour_is_jobs_plus_idle_equals_its_allocation(month):
    a100 = month[0]
    period = _refresh()
    (pool_hour,) = WorkerPoolHour.objects.filter(period=period)
    assert (pool_hour.namespace, pool_hour.cluster, pool_hour.gpu_class, pool_hour.hour_start) == (
        POOL,
        None,
        a100,
        hour(2, 10),
    )
    assert (
        pool_hour.allocation_seconds,
        pool_hour.jobs_seconds,
        pool_hour.idle_seconds,
        pool_hour.excess_seconds,
        pool_hour.flagged,
    ) == (3600, 2700, 900, 0, False)


def test_shared_pool_idle_is_split_by_the_jobs_time_in_the_pool(month):
    _, _marketing, _training, _, _ = month
    period = _refresh(IdlePolicy.SHARED)
    shares = {
        line.department.slug: (line.share, line.amount)
        for line in _lines(period, LineKind.POOL_IDLE)
    }
    # 1800 s of marketing's jobs and 900 s of training's: 2/3 and 1/3 of 0.50.
    assert shares == {
        "marketing": (Decimal("0.6666666667"), Decimal("0.33")),
        "training": (Decimal("0.3333333333"), Decimal("0.17")),
    }
    assert sum(amount for _, amount in shares.values()) == period.pool_idle_amount
    assert "Share of idle in worker pool gpu-workers: 0.50 of 0.75 GPU-hours its jobs used" in (
        _lines(period, LineKind.POOL_IDLE)[0].description
    )
    assert selectors.reconciliation(period=period).difference == 0


def test_charged_pool_idle_lands_on_the_chosen_department(month):
    _, _marketing, training, _, _ = month
    period = _refresh(IdlePolicy.CHARGED, department=training)
    (idle,) = _lines(period, LineKind.POOL_IDLE)
    assert (idle.department, idle.statement.department, idle.amount) == (
        training,
        training,
        Decimal("0.50"),
    )
    assert "charged to this department" in idle.description


def test_before_a_pool_is_marked_nothing_changes_and_the_jobs_namespace_is_named(
    fleet, ledger, jobs
):
    a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", gpu_class=a100, namespace=POOL)
    jobs.run(department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 10) + MIN * 30)
    period = _refresh()
    # As before worker pools: the workers' namespace is Unallocated, the jobs not billed.
    assert period.unallocated_amount == Decimal("2.00")
    assert not _lines(period, LineKind.JOBS) and not _lines(period, LineKind.POOL_IDLE)
    assert Statement.objects.get(period=period, department=marketing).total == 0
    assert period.unmarked_jobs == [
        {"namespace": POOL, "cluster": None, "jobs": 1, "gpu_seconds": "1800.000"}
    ]
    assert selectors.reconciliation(period=period).difference == 0


def test_jobs_beyond_the_pools_allocation_are_flagged_and_billed_once(fleet, ledger, jobs):
    a100, marketing, _ = fleet
    factories.WorkerPoolFactory(namespace=POOL)
    # The pool's pods were seen for a quarter of the hour (a worker Prometheus missed),
    # its jobs ran an hour on 1 GPU: 45 minutes beyond, far more than one GPU-minute.
    ledger.add(at=hour(2, 10), gpu_hours="0.25", gpu_class=a100, namespace=POOL)
    jobs.run(department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 11))
    period = _refresh()
    (pool_hour,) = WorkerPoolHour.objects.filter(period=period)
    assert (pool_hour.excess_seconds, pool_hour.tolerance_seconds, pool_hour.flagged) == (
        2700,
        60,
        True,
    )
    assert "did not scrape" in pool_hour.cause and "not marked as a worker pool" in pool_hour.cause
    # Billed once: the jobs' hour; no pool idle; the fleet counts the hour as used.
    assert Statement.objects.get(period=period, department=marketing).total == Decimal("2.00")
    assert period.pool_idle_amount == 0
    assert period.idle_gpu_hours == Decimal("1487.00")
    assert selectors.reconciliation(period=period).difference == 0
    report = selectors.chargeback_report(
        user=factories.UserFactory(groups=["finance"]), period=period
    )
    assert report.flagged_pool_hours == 1


def test_jobs_within_a_gpu_minute_of_the_allocation_are_not_flagged(fleet, ledger, jobs):
    a100, marketing, _ = fleet
    factories.WorkerPoolFactory(namespace=POOL)
    ledger.add(at=hour(2, 10), gpu_hours=Decimal(59) / 60, gpu_class=a100, namespace=POOL)
    jobs.run(department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 11))
    (pool_hour,) = WorkerPoolHour.objects.filter(period=_refresh())
    assert (pool_hour.excess_seconds, pool_hour.flagged) == (60, False)


def test_a_job_across_the_off_peak_start_is_priced_in_each_hour(fleet, ledger, jobs):
    a100, marketing, _ = fleet
    factories.WorkerPoolFactory(namespace=POOL)
    factories.OffPeakWindowFactory(
        name="Night",
        start_time=dt.time(23),
        end_time=dt.time(7),
        time_zone="UTC",
        price_multiplier=Decimal("0.5"),
    )
    ledger.add(at=hour(2, 22), gpu_hours="1", gpu_class=a100, namespace=POOL)
    ledger.add(at=hour(2, 23), gpu_hours="1", gpu_class=a100, namespace=POOL)
    job = jobs.run(
        department=marketing,
        gpu_class=a100,
        start=hour(2, 22) + MIN * 30,
        end=hour(2, 23) + MIN * 30,
    )
    period = _refresh()
    lines = sorted(
        (line.off_peak_multiplier, line.gpu_seconds, line.amount)
        for line in _lines(period, LineKind.JOBS)
    )
    assert lines == [(Decimal("0.5"), 1800, Decimal("0.50")), (Decimal("1"), 1800, Decimal("1.00"))]
    # The job is behind both lines, with its time on each.
    for line in _lines(period, LineKind.JOBS):
        assert list(line.jobs.values_list("job_id", "gpu_seconds")) == [(job.pk, 1800)]


def test_late_job_time_of_a_finalized_month_becomes_one_adjustment(fleet, ledger, jobs):
    a100, marketing, _ = fleet
    factories.WorkerPoolFactory(namespace=POOL)
    ledger.add(at=hour(2, 10), gpu_hours="2", gpu_class=a100, namespace=POOL)
    jobs.run(department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 10) + MIN * 30)
    march = Statement.objects.get(period=_refresh(), department=marketing)
    march = services.statement_finalize(statement=march, user=None)
    # A job's time recorded after the month was finalized (its worker came back late).
    jobs.run(department=marketing, gpu_class=a100, start=hour(20, 9), end=hour(20, 10))
    services.period_refresh(month=MARCH)
    services.period_refresh(month=MARCH, force=True)
    (adjustment,) = march.adjustments.all()
    assert (adjustment.kind, adjustment.gpu_hours, adjustment.amount) == (
        "late_usage",
        Decimal("1.00"),
        Decimal("2.00"),
    )
    assert march.lines.get(kind="jobs").amount == Decimal("1.00")  # as it was finalized


def test_marking_a_pool_after_a_month_was_finalized_leaves_that_month_as_it_was(
    fleet, ledger, jobs
):
    a100, marketing, _ = fleet
    ledger.add(at=hour(2, 10), gpu_hours="1", gpu_class=a100, namespace=POOL)
    jobs.run(department=marketing, gpu_class=a100, start=hour(2, 10), end=hour(2, 10) + MIN * 30)
    period = _refresh()
    for statement in Statement.objects.filter(period=period):
        services.statement_finalize(statement=statement, user=None)
    before = (period.unallocated_amount, period.capacity_amount)
    factories.WorkerPoolFactory(namespace=POOL)
    period = services.period_refresh(month=MARCH, force=True)
    assert (period.unallocated_amount, period.capacity_amount) == before
    assert not _lines(period, LineKind.POOL_IDLE)
    assert not Statement.objects.get(period=period, department=marketing).adjustments.exists()
    assert selectors.reconciliation(period=period).difference == 0


# --- The jobs behind a line ------------------------------------------------------------------


def test_the_jobs_of_a_line_are_listed_in_the_api_and_on_a_page(world, month, api_client, client):
    _, marketing, _, render, _ = month
    period = _refresh()
    statement = Statement.objects.get(period=period, department=marketing)
    line = statement.lines.get(kind="jobs")

    body = client_as(api_client, world, "manager").get(f"/api/v1/statements/{statement.pk}/").json()
    (shown,) = [row for row in body["lines"] if row["kind"] == "jobs"]
    assert shown["jobs_url"] == f"/api/v1/statements/{statement.pk}/lines/{line.pk}/jobs/"
    assert (shown["job_kind"], shown["jobs_count"]) == ("lipsync-render", 1)
    listed = client_as(api_client, world, "manager").get(shown["jobs_url"]).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [(row["id"], row["kind"], row["gpu_hours"], row["gpu_seconds"]) for row in rows] == [
        (str(render.pk), "lipsync-render", "0.50", "1800")
    ]

    page = client_as(client, world, "manager").get(f"/billing/statements/{statement.pk}/")
    link = f'href="/billing/statements/{statement.pk}/lines/{line.pk}/jobs/">list the 1 job</a>'
    # The link follows the line's description after a separator, not run into it.
    assert f"{line.description} · <a {link}" in page.content.decode()
    jobs_page = client_as(client, world, "manager").get(
        f"/billing/statements/{statement.pk}/lines/{line.pk}/jobs/"
    )
    assert jobs_page.status_code == 200
    assert f'href="/jobs/{render.pk}/"' in jobs_page.content.decode()


def test_the_pool_report_lists_pool_hours_for_finance_only(world, month, api_client):
    _refresh()
    finance = client_as(api_client, world, "finance").get("/api/v1/reports/pools/?period=2026-03")
    (row,) = finance.json()["results"]
    assert (row["namespace"], row["gpu_class"], row["allocation_seconds"], row["jobs_seconds"]) == (
        POOL,
        "a100",
        "3600",
        "2700",
    )
    assert (row["idle_seconds"], row["excess_seconds"], row["flagged"]) == ("900", "0", False)
    manager = client_as(api_client, world, "manager").get("/api/v1/reports/pools/?period=2026-03")
    assert manager.json()["results"] == []
    csv = client_as(api_client, world, "finance").get(
        "/api/v1/reports/pools/?period=2026-03&format=csv"
    )
    assert csv.content.decode().splitlines()[0].startswith("namespace,cluster,gpu_class,hour_start")


def test_the_dashboard_shows_the_pools_and_their_idle(world, month, client):
    _refresh()
    page = client_as(client, world, "finance").get("/billing/?period=2026-03").content.decode()
    text = " ".join(page.split())
    assert '<th>Worker pool idle</th><th class="num">0.50 EUR</th>' in text
    assert "+ pool idle 0.50" in text
    assert "<td><code>gpu-workers</code></td>" in text
