"""Alert thresholds mail the department's managers once per quota and period; a soft
quota admits over its limit and alerts."""

from django.core import mail

from jobs.models import QuotaAlert
from tests import factories
from tests.jobs.conftest import NOON, quota


def test_reaching_a_threshold_mails_the_managers_once_per_period(
    world, submit, django_capture_on_commit_callbacks
):
    factories.MembershipFactory(
        user=factories.UserFactory(username="second-manager"),
        department=world.marketing,
        role="manager",
    )
    quota(world, "jobs_day", 5, alert_thresholds_pct=[80, 100])
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            submit()
    alerts = list(QuotaAlert.objects.order_by("threshold_pct"))
    assert [(a.threshold_pct, a.period, a.use) for a in alerts] == [
        (80, "2026-11-25", 4),
        (100, "2026-11-25", 5),
    ]
    assert len(mail.outbox) == 2
    assert sorted(mail.outbox[0].to) == ["mara@example.com", "second-manager@example.com"]
    assert "80 %" in mail.outbox[0].subject and "4 of 5 jobs" in mail.outbox[0].subject


def test_the_same_threshold_does_not_mail_again_in_the_period(
    world, submit, django_capture_on_commit_callbacks
):
    quota(world, "concurrent_jobs", 2, "soft", alert_thresholds_pct=[100])
    with django_capture_on_commit_callbacks(execute=True):
        states = [submit().state for _ in range(3)]
    assert states == ["queued", "queued", "queued"]  # soft: admitted over the limit
    assert QuotaAlert.objects.count() == 1
    assert len(mail.outbox) == 1


def test_soft_quota_alerts_when_exceeded_even_without_thresholds(
    world, submit, django_capture_on_commit_callbacks
):
    quota(world, "concurrent_jobs", 1, "soft", alert_thresholds_pct=[])
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(now=NOON).state == "queued"
    assert [a.threshold_pct for a in QuotaAlert.objects.all()] == [100]
    assert len(mail.outbox) == 1
