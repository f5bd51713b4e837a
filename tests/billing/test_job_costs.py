"""What each portal job cost: its share of the portal-jobs lines that charge it. In a
finalized month the jobs of a department add up to its portal-jobs lines to the cent; a
draft's are estimates; the pages show them; a member sees their own jobs' costs only."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from billing import foresight, services
from billing.models import LineKind, Statement, StatementLine
from core import calendar
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

MARCH = dt.date(2026, 3, 1)
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def march(fleet, ledger, jobs):
    """Seven marketing jobs of odd lengths (so the line's cents must be split), some in the
    nightly off-peak hours, and one training job, run in the marked worker pool."""
    a100, marketing, training = fleet
    factories.WorkerPoolFactory(namespace="gpu-workers")
    kind = factories.JobKindFactory(slug="lipsync-render", name="Lip-sync render")
    run = []
    for n, (day, start_h, minutes) in enumerate(
        [(2, 10, 7), (2, 11, 13), (3, 1, 29), (3, 14, 31), (4, 9, 17), (5, 2, 11), (6, 16, 23)]
    ):
        run.append(
            jobs.run(
                department=marketing,
                gpu_class=a100,
                start=hour(day, start_h) + MIN * n,
                end=hour(day, start_h) + MIN * (n + minutes),
                kind=kind,
            )
        )
    other = jobs.run(
        department=training,
        gpu_class=a100,
        start=hour(7, 10),
        end=hour(7, 10) + MIN * 19,
        kind=factories.JobKindFactory(slug="lesson", name="Lesson"),
    )
    services.period_refresh(month=MARCH, force=True)
    return marketing, training, run, other


def test_a_finalized_months_job_costs_add_up_to_its_portal_jobs_lines(march):
    marketing, training, run, other = march
    for statement in Statement.objects.filter(period__month=MARCH):
        services.statement_finalize(statement=statement)
    costs = foresight.job_costs([*run, other])
    assert all(cost.final and cost.label == "final" for cost in costs.values())
    for department, its_jobs in ((marketing, run), (training, [other])):
        lines = StatementLine.objects.filter(
            period__month=MARCH, kind=LineKind.JOBS, statement__department=department
        ).aggregate(total=Sum("amount"))["total"]
        assert sum(costs[job.pk].amount for job in its_jobs) == lines
        assert lines > 0
    # A job alone on its line costs the line.
    (line,) = StatementLine.objects.filter(kind=LineKind.JOBS, statement__department=training)
    assert costs[other.pk].amount == line.amount
    # Each share is the job's GPU time at the line's price, to within a cent.
    for job in run:
        assert costs[job.pk].amount == pytest.approx(
            costs[job.pk].gpu_seconds / 3600 * Decimal("2.00"), abs=Decimal("0.6") * 2
        )


def test_a_drafts_job_costs_are_estimates(march):
    _, _, run, _ = march
    costs = foresight.job_costs(run)
    assert {cost.label for cost in costs.values()} == {"estimated"}


def test_the_department_page_lists_cost_by_kind_and_submitter(world, client, settings):
    from billing.models import RateCard
    from tests.billing.conftest import Jobs

    RateCard.objects.create(
        gpu_class=world.a100,
        price_per_gpu_hour=Decimal("3.00"),
        valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    factories.WorkerPoolFactory(namespace="gpu-workers")
    start = calendar.floor_hour(timezone.now()) - dt.timedelta(hours=2)
    month_start, _ = calendar.month_bounds(timezone.now())
    start = max(start, month_start)
    job = Jobs(settings).run(
        department=world.marketing, gpu_class=world.a100, start=start, end=start + MIN * 30
    )
    job.submitter = world.user("manager")
    job.save()
    services.period_refresh(month=calendar.month_of(timezone.now()), force=True)
    cost = foresight.job_costs([job])[job.pk]
    for role in ("manager", "finance"):
        page = " ".join(
            client_as(client, world, role).get("/departments/marketing/").content.decode().split()
        )
        assert "Cost of portal jobs" in page
        assert '<td>mara</td><td class="num">1</td>' in page
        assert f"{cost.amount:.2f} EUR" in page
    page = " ".join(
        client_as(client, world, "member").get("/departments/marketing/").content.decode().split()
    )
    assert "your own jobs" in page and "<td>mara</td>" not in page
    detail = client_as(client, world, "manager").get(f"/jobs/{job.pk}/").content.decode()
    assert f"{cost.amount:.2f} EUR" in detail and "estimated" in detail
    listing = client_as(client, world, "finance").get("/jobs/").content.decode()
    assert f"{cost.amount:.2f} EUR" in listing


@pytest.mark.parametrize("costs", ["0001-01", "9999-12", "garbage"])
def test_a_month_picker_value_that_is_no_month_says_why(world, client, costs):
    page = client_as(client, world, "manager").get(f"/departments/marketing/?costs={costs}")
    assert page.status_code == 200
    assert 'class="error" role="alert"' in page.content.decode()
