"""Monthly budgets alert on use itself, not only when a job is submitted: the department's
own workloads in its namespaces, metered from Prometheus, count against its budget, and the
periodic check tells its managers once per threshold and month (the same records admission
writes, so neither repeats the other)."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail

from jobs import services
from jobs.models import QuotaAlert
from tests import factories
from tests.jobs.conftest import NOON, quota

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """The periodic check at ``now``, its mail sent as after the commit."""

    def run(now):
        with django_capture_on_commit_callbacks(execute=True):
            return services.budgets_alert(now=now)

    return run


def metered(world, hours: str, hours_ago: int):
    return factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=NOON - hours_ago * HOUR,
        gpu_hours=Decimal(hours),
    )


def test_metered_use_alerts_each_threshold_once(world, check):
    budget = quota(world, "gpu_hours_month", Decimal("10"), alert_thresholds_pct=[50, 80, 100])
    metered(world, "8.5", 5)
    sent = check(NOON)
    assert sorted(a.threshold_pct for a in sent) == [50, 80]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [world.user("manager").email]
    assert "at 85 %" in message.subject and "8.5 of 10 GPU-hours" in message.subject
    assert "metered so far this month" in message.body
    assert "held" not in message.body

    # Seen again, nothing new: no mail, no record.
    assert check(NOON) == []
    assert len(mail.outbox) == 1

    metered(world, "1.5", 4)
    sent = check(NOON)
    assert [a.threshold_pct for a in sent] == [100]
    assert "ClusterQueue is held" in mail.outbox[-1].body
    assert QuotaAlert.objects.filter(quota=budget, period="2026-11").count() == 3


def test_a_soft_budget_alerts_and_never_says_held(world, check):
    quota(
        world,
        "gpu_hours_month",
        Decimal("4"),
        enforcement="soft",
        alert_thresholds_pct=[80],
    )
    metered(world, "6", 3)
    sent = check(NOON)
    assert sorted(a.threshold_pct for a in sent) == [80, 100]
    assert "held" not in mail.outbox[-1].body


def test_a_new_month_alerts_again(world, check):
    quota(world, "gpu_hours_month", Decimal("10"), alert_thresholds_pct=[80])
    metered(world, "9", 5)
    assert len(check(NOON)) == 1
    december = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
    factories.UsageRecordFactory(
        department=world.marketing,
        gpu_class=world.t4,
        hour_start=december - 5 * HOUR,
        gpu_hours=Decimal("9"),
    )
    assert [a.period for a in check(december)] == ["2026-12"]


def test_budgets_narrowed_to_a_job_kind_are_left_to_admission(world, check):
    """Metering cannot see job kinds: such a budget counts only admitted jobs."""
    quota(world, "gpu_hours_month", Decimal("1"), job_kind="lipsync-render")
    metered(world, "50", 5)
    assert check(NOON) == []
    assert mail.outbox == []
