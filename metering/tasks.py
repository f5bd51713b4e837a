"""Celery tasks of metering: thin wrappers that load by id and call a service."""

import datetime as dt

from celery import shared_task

from metering import services
from metering.models import MeteringRun, MetricSource


@shared_task(name="metering.pull_recent", ignore_result=True)
def pull_recent() -> list[int]:
    """Every enabled source: its last hours again and the hour in progress."""
    return [
        services.usage_pull_recent(source=source).pk
        for source in MetricSource.objects.filter(enabled=True)
    ]


@shared_task(name="metering.backfill_gaps", ignore_result=True)
def backfill_gaps() -> list[int]:
    """Every enabled source: the recent hours no successful run covered."""
    return [
        run.pk
        for source in MetricSource.objects.filter(enabled=True)
        for run in services.usage_backfill_gaps(source=source)
    ]


@shared_task(name="metering.pull_window", ignore_result=True)
def pull_window(source_id: int, start: str, end: str) -> int:
    """One source over one window (ISO 8601 date-times), for the admin's re-pull action."""
    run = services.usage_pull(
        source=MetricSource.objects.get(pk=source_id),
        start=dt.datetime.fromisoformat(start),
        end=dt.datetime.fromisoformat(end),
        trigger=MeteringRun.Trigger.MANUAL,
    )
    return run.pk
