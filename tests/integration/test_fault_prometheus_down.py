"""Prometheus away for an hour while the scheduled pulls run every five minutes: each pull
in the outage fails and writes nothing, ``metering_status`` shows the hour that lost its
last pull, and once Prometheus is back the ledger ends up equal, hour by hour and in
total, to a ledger pulled in one go from a healthy Prometheus: by the scheduled pulls
themselves when the outage is shorter than the source's ``repull_hours``, by the gap
backfill otherwise.

The clock is simulated: ``timezone.now()`` walks through a day of the synthetic history
five minutes at a time, and the beat tasks (``metering.pull_recent``,
``metering.backfill_gaps``) run at each step. Before the outage the source reads a
Prometheus whose data ends at the last pull before the outage (10:55), as a live one's
would: the hour in progress then is incomplete. The outage is the portal not reaching
Prometheus (stopped); the server that comes back at the same address holds the whole
history, as a Prometheus that kept scraping (or the long-term store behind it) would."""

import dataclasses
import datetime as dt
import io
import shutil
from collections import defaultdict
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from core import calendar
from demo import local_prometheus, synthetic
from metering import services, tasks
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.selectors import gaps, metering_status
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

PULL_EVERY = dt.timedelta(minutes=5)
FIRST_PULL, OUTAGE_START, OUTAGE_END, LAST_PULL = 8, 11, 12, 14  # hours into the history


def ledger(source: MetricSource) -> dict:
    return {
        (r.namespace, r.gpu_model, r.hour_start): r.quantity
        for r in UsageRecord.objects.filter(source=source)
    }


def by_hour(rows: dict) -> dict:
    totals: dict = defaultdict(Decimal)
    for (_, _, hour), quantity in rows.items():
        totals[hour] += quantity
    return dict(totals)


@pytest.fixture(scope="module")
def blocks_until_outage(prometheus_history, tmp_path_factory):
    """TSDB blocks of the same history, cut at the last pull before the outage: what a
    live Prometheus held then."""
    h = prometheus_history
    cut = h.at(OUTAGE_START) - PULL_EVERY
    pods = [dataclasses.replace(pod, end=min(pod.end, cut)) for pod in h.pods if pod.start < cut]
    root = tmp_path_factory.mktemp("prometheus-until-outage")
    synthetic.write_openmetrics(root / "history.om", pods=pods, dcgm=False)
    local_prometheus.backfill(root / "history.om", root / "blocks")
    return root / "blocks"


@dataclasses.dataclass
class Clock:
    now: dt.datetime


@pytest.fixture
def clock(monkeypatch, prometheus_history) -> Clock:
    """``timezone.now()`` as the test sets it: run start times (which say which hours a
    run covered) and the beat tasks' "now" follow the simulated day."""
    clock = Clock(prometheus_history.at(FIRST_PULL))
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


@pytest.fixture
def allocation(world, settings, prometheus_history):
    """The billing source, the only one enabled (the beat tasks loop over enabled ones);
    a failed pull is not retried (no waiting on back-off in the test)."""
    settings.PROMETHEUS_URL = prometheus_history.url
    settings.METERING_RETRIES = 0
    MetricSource.objects.exclude(name="allocation").update(enabled=False)
    return MetricSource.objects.get(name="allocation")


@pytest.fixture
def healthy(allocation, prometheus_history) -> MetricSource:
    """The same query, on the session's Prometheus, which never goes away (disabled: only
    the test pulls it)."""
    twin = MetricSource.objects.get(pk=allocation.pk)
    twin.pk = None
    twin.name = "allocation-healthy"
    twin.enabled = False
    twin.is_billing = False
    twin.prometheus_url = prometheus_history.url
    twin.save()
    return twin


@pytest.fixture
def prometheus(tmp_path, blocks_until_outage, prometheus_history):
    """``start(whole_history)`` runs a Prometheus of the test's own, always at the same
    address; every one started is stopped when the test ends."""
    port, servers = free_port(), []

    def start(*, whole_history: bool):
        data = tmp_path / f"data-{len(servers)}"
        shutil.copytree(prometheus_history.blocks if whole_history else blocks_until_outage, data)
        servers.append(local_prometheus.start(data, port=port, lookback_delta="31s"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _pull_every_five_minutes(clock: Clock, start: dt.datetime, end: dt.datetime) -> list:
    """The scheduled pull, as beat runs it, at ``start``, ``start`` + 5 min, ... ``end``."""
    runs = []
    clock.now = start
    while clock.now <= end:
        runs += MeteringRun.objects.filter(pk__in=tasks.pull_recent())
        clock.now += PULL_EVERY
    return runs


def _status_text() -> str:
    out = io.StringIO()
    call_command("metering_status", stdout=out)
    return out.getvalue()


def _an_hour_without_prometheus(*, allocation, clock, prometheus, h, repull_hours):
    """Pulls with Prometheus up until 10:55, away from 11:00 to 11:55, back from 12:00 to
    14:00; returns the ledger as it was before the outage and the first window's start."""
    allocation.repull_hours = repull_hours
    allocation.save()
    first_hour = h.at(FIRST_PULL) - dt.timedelta(hours=repull_hours)

    live = prometheus(whole_history=False)
    allocation.prometheus_url = live.url
    allocation.save()
    before = _pull_every_five_minutes(clock, h.at(FIRST_PULL), h.at(OUTAGE_START) - PULL_EVERY)
    assert {run.status for run in before} == {MeteringRun.Status.SUCCEEDED}
    kept = ledger(allocation)

    live.stop()
    during = _pull_every_five_minutes(clock, h.at(OUTAGE_START), h.at(OUTAGE_END) - PULL_EVERY)
    assert len(during) == 12
    for run in during:
        assert (run.status, run.rows_written) == (MeteringRun.Status.FAILED, 0)
        assert run.error == (
            f"Could not reach Prometheus at {live.url}: is it running, and is the URL right?"
        )
    assert ledger(allocation) == kept  # nothing written, nothing zeroed
    # At 11:55 the hour 10:00-11:00 has not been pulled since it ended.
    clock.now = h.at(OUTAGE_END) - PULL_EVERY
    (status,) = [s for s in metering_status() if s.source == allocation]
    assert (status.gaps, status.gap_hours) == ([(h.at(10), h.at(11))], 1)
    text = _status_text()
    assert "gaps: 1 h in 1 gap(s)" in text
    assert f"gap {h.at(10):%Y-%m-%d %H:%M} UTC - {h.at(11):%Y-%m-%d %H:%M} UTC" in text
    assert f"last error: Could not reach Prometheus at {live.url}" in text

    back = prometheus(whole_history=True)
    assert back.url == live.url  # the source's URL did not change
    after = _pull_every_five_minutes(clock, h.at(OUTAGE_END), h.at(LAST_PULL))
    assert {run.status for run in after} == {MeteringRun.Status.SUCCEEDED}
    return kept, first_hour


def _backfill_as_scheduled(clock, settings, first_hour, h) -> list:
    """The hourly ``metering.backfill_gaps`` task, run at 14:02 and looking back to the
    first hour the scheduled pulls took."""
    clock.now = h.at(LAST_PULL) + dt.timedelta(minutes=2)
    settings.METERING_GAP_LOOKBACK_HOURS = calendar.hour_count(
        first_hour, calendar.floor_hour(clock.now)
    )
    return list(MeteringRun.objects.filter(pk__in=tasks.backfill_gaps()))


def _assert_exact(allocation, healthy, first_hour, h):
    """The ledger equals the one pulled in one go from the healthy Prometheus, row by
    row, hour by hour and in total, and no hour is left uncovered."""
    window_end = h.at(LAST_PULL + 1)  # the 14:00 pull took the hour in progress
    reference_run = services.usage_pull(source=healthy, start=first_hour, end=window_end)
    assert reference_run.status == MeteringRun.Status.SUCCEEDED, reference_run.error
    reference, result = ledger(healthy), ledger(allocation)
    # Not two empty ledgers: the hours around the outage had GPUs in use.
    assert len(reference) > 10
    assert all(by_hour(reference)[h.at(hour)] > 0 for hour in range(9, LAST_PULL + 1))
    assert result == reference
    assert by_hour(result) == by_hour(reference)
    assert sum(result.values()) == sum(reference.values())
    assert gaps(source=allocation, start=first_hour, end=h.at(LAST_PULL)) == []
    (status,) = [s for s in metering_status() if s.source == allocation]
    assert status.gap_hours == 0


def test_an_outage_longer_than_the_repull_is_backfilled_to_the_exact_totals(
    allocation, healthy, clock, prometheus, prometheus_history, settings
):
    h = prometheus_history
    kept, first_hour = _an_hour_without_prometheus(
        allocation=allocation, clock=clock, prometheus=prometheus, h=h, repull_hours=1
    )
    # With one hour of repull, the 12:00 pull starts at 11:00: the hour 10:00-11:00 keeps
    # what the 10:55 pull saw (55 minutes of it), and stays a gap.
    assert gaps(source=allocation, start=first_hour, end=h.at(LAST_PULL)) == [(h.at(10), h.at(11))]
    hour_10 = {k: v for k, v in ledger(allocation).items() if k[2] == h.at(10)}
    assert hour_10 == {k: v for k, v in kept.items() if k[2] == h.at(10)}
    assert hour_10[("dept-marketing", "Tesla-T4", h.at(10))] == 10 * 60  # GPU-seconds: 10 of 15 min

    filled = _backfill_as_scheduled(clock, settings, first_hour, h)

    assert [(r.window_start, r.window_end, r.trigger, r.status) for r in filled] == [
        (h.at(10), h.at(11), MeteringRun.Trigger.GAP, MeteringRun.Status.SUCCEEDED)
    ]
    assert ledger(allocation)[("dept-marketing", "Tesla-T4", h.at(10))] == 15 * 60
    _assert_exact(allocation, healthy, first_hour, h)


def test_an_outage_shorter_than_the_repull_is_refilled_by_the_next_scheduled_pull(
    allocation, healthy, clock, prometheus, prometheus_history, settings
):
    h = prometheus_history
    assert MetricSource._meta.get_field("repull_hours").default == 3
    _, first_hour = _an_hour_without_prometheus(
        allocation=allocation, clock=clock, prometheus=prometheus, h=h, repull_hours=3
    )
    # The 12:00 pull took 09:00 to 13:00 again: nothing is left for the backfill.
    assert gaps(source=allocation, start=first_hour, end=h.at(LAST_PULL)) == []
    assert ledger(allocation)[("dept-marketing", "Tesla-T4", h.at(10))] == 15 * 60

    assert _backfill_as_scheduled(clock, settings, first_hour, h) == []
    _assert_exact(allocation, healthy, first_hour, h)
