"""Which hours count as covered: those a successful run pulled after they had ended. An hour
pulled while still in progress, or by a failed run, is a gap the backfill takes again."""

import datetime as dt

import pytest

from core.calendar import ceil_hour, chunks, complement, floor_hour
from metering.models import MeteringRun, MetricSource
from metering.selectors import gaps

T0 = dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def _run(source, start, end, started, status=MeteringRun.Status.SUCCEEDED):
    return MeteringRun.objects.create(
        source=source, window_start=start, window_end=end, started_at=started, status=status
    )


@pytest.fixture
def source(db):
    return MetricSource.objects.get(name="allocation")


def test_an_hour_pulled_while_in_progress_is_still_a_gap(source):
    _run(source, at(9), at(13), started=at(12.5))
    assert gaps(source=source, start=at(9), end=at(14)) == [(at(12), at(14))]


def test_a_later_run_covers_the_hour_that_was_in_progress(source):
    _run(source, at(9), at(13), started=at(12.5))
    _run(source, at(10), at(14), started=at(13.1))
    assert gaps(source=source, start=at(9), end=at(14)) == [(at(13), at(14))]


def test_failed_and_running_runs_cover_nothing(source):
    _run(source, at(0), at(6), started=at(7), status=MeteringRun.Status.FAILED)
    _run(source, at(6), at(8), started=at(9), status=MeteringRun.Status.RUNNING)
    _run(source, at(2), at(3), started=at(9))
    assert gaps(source=source, start=at(0), end=at(8)) == [(at(0), at(2)), (at(3), at(8))]


def test_hours_are_whole_utc_hours():
    moment = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert floor_hour(moment) == dt.datetime(2026, 3, 29, 1, tzinfo=dt.UTC)
    assert ceil_hour(moment) == dt.datetime(2026, 3, 29, 2, tzinfo=dt.UTC)
    assert ceil_hour(floor_hour(moment)) == floor_hour(moment)
    with pytest.raises(ValueError, match="aware"):
        floor_hour(dt.datetime(2026, 3, 29, 3, 30))


def test_long_windows_are_cut_into_consecutive_chunks():
    assert list(chunks(at(0), at(10), 4)) == [(at(0), at(4)), (at(4), at(8)), (at(8), at(10))]
    assert complement([(at(2), at(3)), (at(2.5), at(5))], at(0), at(6)) == [
        (at(0), at(2)),
        (at(5), at(6)),
    ]


def test_a_run_left_running_by_a_dead_process_is_marked_abandoned_by_the_next_pull(
    source, settings
):
    from django.utils import timezone

    from metering import services

    settings.PROMETHEUS_URL = "http://127.0.0.1:9"  # nothing listens: the new pull fails
    settings.METERING_RETRIES = 0
    dead = _run(
        source,
        at(0),
        at(1),
        started=timezone.now() - dt.timedelta(hours=7),
        status=MeteringRun.Status.RUNNING,
    )
    recent = _run(
        source,
        at(1),
        at(2),
        started=timezone.now() - dt.timedelta(minutes=5),
        status=MeteringRun.Status.RUNNING,
    )
    services.usage_pull(source=source, start=at(2), end=at(3))
    dead.refresh_from_db()
    recent.refresh_from_db()
    assert (dead.status, dead.error) == (
        "failed",
        "Abandoned: the process running this pull stopped before it finished.",
    )
    assert recent.status == "running"  # may still be at work
