"""The periodic metering tasks exist after migrate, in django-celery-beat's tables where IT
can tune them; installing again never undoes what IT changed."""

from django_celery_beat.models import IntervalSchedule, PeriodicTask

from portal.periodic import periodic_tasks_install


def test_metering_job_billing_and_cluster_tasks_are_scheduled_after_migrate(db):
    scheduled = {
        task.name: (task.task, task.interval.every, task.interval.period, task.enabled)
        for task in PeriodicTask.objects.select_related("interval")
    }
    assert scheduled == {
        "Pull recent GPU usage": ("metering.pull_recent", 300, "seconds", True),
        "Backfill metering gaps": ("metering.backfill_gaps", 3600, "seconds", True),
        "Release waiting jobs": ("jobs.release_waiting", 30, "seconds", True),
        "Alert on monthly budgets": ("jobs.alert_budgets", 600, "seconds", True),
        "Sweep job dispatch": ("jobs.sweep", 60, "seconds", True),
        "Refresh draft statements": ("billing.refresh_drafts", 300, "seconds", True),
        "Finalize statements after the grace period": (
            "billing.finalize_due",
            3600,
            "seconds",
            True,
        ),
        "Send due alerts and statements": ("billing.notifications_due", 60, "seconds", True),
        "Alert on budget forecasts": ("billing.forecast_alerts", 3600, "seconds", True),
        "Alert on unusual daily spend": ("billing.spend_anomalies", 3600, "seconds", True),
        "Check the clusters for drift": ("cluster.check_drift", 600, "seconds", True),
    }


def test_installing_again_keeps_what_it_changed(db):
    pull = PeriodicTask.objects.get(name="Pull recent GPU usage")
    pull.interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.MINUTES)
    pull.enabled = False
    pull.save()
    PeriodicTask.objects.filter(name="Backfill metering gaps").delete()

    assert periodic_tasks_install() == ["Backfill metering gaps"]
    pull.refresh_from_db()
    assert (pull.interval.every, pull.interval.period, pull.enabled) == (10, "minutes", False)
