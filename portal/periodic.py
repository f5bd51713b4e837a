"""The periodic tasks the portal needs, declared in this one place.

They are stored by django-celery-beat, so IT can change their schedule or switch them off
in the admin; :func:`periodic_tasks_install` (run after every ``migrate``) creates the ones
that are missing and never overwrites what IT changed.
"""

from django.db import transaction

# name shown in the admin -> (task, every so many seconds, description)
PERIODIC_TASKS = {
    "Pull recent GPU usage": (
        "metering.pull_recent",
        300,
        "Every enabled metric source: the last few hours again (late samples) and the hour "
        "in progress.",
    ),
    "Backfill metering gaps": (
        "metering.backfill_gaps",
        3600,
        "Hours that no successful metering run covered, pulled again oldest first.",
    ),
    "Release waiting jobs": (
        "jobs.release_waiting",
        30,
        "Waiting jobs that now have room (a new day, a freed slot, the off-peak hours), "
        "by priority then age.",
    ),
    "Alert on monthly budgets": (
        "jobs.alert_budgets",
        600,
        "Monthly GPU-hour budgets whose thresholds the department's metered use (its "
        "namespaces' own workloads as well as portal jobs) reached: its managers are told "
        "once per threshold and month; a spent hard budget holds its Kueue queue.",
    ),
    "Sweep job dispatch": (
        "jobs.sweep",
        60,
        "Queued jobs that no broker took are sent again; jobs whose worker died are queued again.",
    ),
    "Refresh draft statements": (
        "billing.refresh_drafts",
        300,
        "Months whose ledger, prices or policy changed: their draft statements, Unallocated "
        "and idle figures recomputed, and usage metered after finalization turned into "
        "adjustments.",
    ),
    "Finalize statements after the grace period": (
        "billing.finalize_due",
        3600,
        "Draft statements of months that ended more than BILLING_FINALIZE_AFTER_H hours ago "
        "are finalized.",
    ),
    "Send due alerts and statements": (
        "billing.notifications_due",
        60,
        "Alert deliveries and statement mails whose next attempt is due (retries after a "
        "failure, with growing waits), and statements finalized recently whose mail never "
        "started.",
    ),
    "Alert on budget forecasts": (
        "billing.forecast_alerts",
        3600,
        "Monthly GPU-hour budgets whose month-end forecast crosses a threshold before use "
        "does: the department's managers are told once per threshold and month.",
    ),
    "Alert on unusual daily spend": (
        "billing.spend_anomalies",
        3600,
        "Departments' days of spend far from their usual day (median and MAD of the 28 "
        "days before): recorded and told to the managers once per department and day.",
    ),
    "Check the clusters for drift": (
        "cluster.check_drift",
        600,
        "Every cluster compared, through Prometheus (kube-state-metrics, Kueue), with what "
        "the portal renders for it; IT is mailed each new difference once.",
    ),
}


@transaction.atomic
def periodic_tasks_install(**kwargs) -> list[str]:
    """Create the declared periodic tasks that do not exist yet; returns their names."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, (task, every_s, description) in PERIODIC_TASKS.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=every_s, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=name, task=task, interval=interval, description=description
        )
        created.append(name)
    return created
