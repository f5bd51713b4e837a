"""Pulling is safe to repeat and safe to fail: the same window twice or overlapping windows
give the same ledger, vanished series go to zero, odd values are refused with a warning,
and a Prometheus that dies mid-pull leaves the ledger as it was, with the gap found and
filled afterwards to the exact totals."""

import io
import shutil
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo import local_prometheus
from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.selectors import gaps

pytestmark = pytest.mark.integration


def ledger(source) -> dict:
    return {
        (r.namespace, r.gpu_model, r.hour_start): r.quantity
        for r in UsageRecord.objects.filter(source=source)
    }


@pytest.fixture
def allocation(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    return MetricSource.objects.get(name="allocation")


def test_pulling_the_same_window_twice_gives_the_same_ledger(allocation, prometheus_history):
    h = prometheus_history
    services.usage_pull(source=allocation, start=h.day, end=h.at(48))
    first = ledger(allocation)
    again = services.usage_pull(source=allocation, start=h.day, end=h.at(48))
    assert again.status == MeteringRun.Status.SUCCEEDED
    assert ledger(allocation) == first
    assert UsageRecord.objects.filter(source=allocation).count() == len(first) > 20


def test_overlapping_windows_give_the_same_ledger_as_one_window(allocation, prometheus_history):
    h = prometheus_history
    services.usage_pull(source=allocation, start=h.day, end=h.at(48))
    whole = ledger(allocation)
    UsageRecord.objects.all().delete()
    services.usage_pull(source=allocation, start=h.at(0), end=h.at(12))
    services.usage_pull(source=allocation, start=h.at(9), end=h.at(30))
    services.usage_pull(source=allocation, start=h.at(28), end=h.at(48))
    assert ledger(allocation) == whole


def test_an_hour_whose_series_vanished_goes_to_zero(allocation, prometheus_history, world):
    h = prometheus_history
    stale_run = services.usage_pull(source=allocation, start=h.at(3), end=h.at(4))
    ghost = UsageRecord.objects.create(
        source=allocation,
        namespace="dept-marketing",
        gpu_model="NVIDIA-H100",
        hour_start=h.at(3),
        department=world.marketing,
        quantity=Decimal(5 * 3600),
        run=stale_run,
    )
    outside = UsageRecord.objects.create(
        source=allocation,
        namespace="dept-marketing",
        gpu_model="NVIDIA-H100",
        hour_start=h.at(5),
        quantity=Decimal(5 * 3600),
        run=stale_run,
    )
    run = services.usage_pull(source=allocation, start=h.at(2), end=h.at(5))
    ghost.refresh_from_db()
    outside.refresh_from_db()
    assert (ghost.quantity, ghost.run) == (Decimal("0"), run)
    assert outside.quantity == 5 * 3600  # outside the window: untouched


def test_nan_infinite_and_negative_answers_are_refused_with_a_warning(
    world, settings, prometheus_history
):
    settings.PROMETHEUS_URL = prometheus_history.url
    odd = MetricSource.objects.create(
        name="odd",
        namespace_label="namespace",
        query_template=(
            'label_replace(vector(0) / 0, "namespace", "nan-ns", "", "")'
            ' or label_replace(vector(1) / 0, "namespace", "inf-ns", "", "")'
            ' or label_replace(vector(-1), "namespace", "negative-ns", "", "")'
            ' or label_replace(vector(2), "namespace", "dept-marketing", "", "")'
        ),
    )
    h = prometheus_history
    run = services.usage_pull(source=odd, start=h.at(0), end=h.at(3))
    assert run.status == MeteringRun.Status.SUCCEEDED
    assert set(UsageRecord.objects.filter(source=odd).values_list("namespace", "quantity")) == {
        ("dept-marketing", Decimal("2.000000"))  # the odd source measures GPU-seconds
    }
    assert sorted(run.warnings) == [
        "3 NaN value(s) refused for namespace 'nan-ns', model '', first in the hour from "
        f"{h.at(0):%Y-%m-%d %H}:00 UTC",
        "3 infinite value(s) refused for namespace 'inf-ns', model '', first in the hour from "
        f"{h.at(0):%Y-%m-%d %H}:00 UTC",
        "3 negative value(s) refused for namespace 'negative-ns', model '', first in the hour "
        f"from {h.at(0):%Y-%m-%d %H}:00 UTC",
    ]


def test_a_query_prometheus_refuses_fails_the_run_with_its_reason(allocation, prometheus_history):
    allocation.query_template = "sum by (namespace (broken"
    allocation.save()
    run = services.usage_pull(
        source=allocation, start=prometheus_history.at(0), end=prometheus_history.at(2)
    )
    assert run.status == MeteringRun.Status.FAILED
    assert run.error.startswith(f"Prometheus at {prometheus_history.url} answered 400: ")
    assert "parse error" in run.error
    assert not UsageRecord.objects.exists()


@pytest.fixture
def own_prometheus(tmp_path, prometheus_history):
    """A Prometheus of the test's own over the same history, which the test may stop."""
    data = tmp_path / "data"
    shutil.copytree(prometheus_history.blocks, data)
    servers = []

    def start(port=None):
        servers.append(local_prometheus.start(data, port=port, lookback_delta="31s"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_a_prometheus_that_dies_mid_pull_leaves_the_ledger_as_it_was(
    allocation, prometheus_history, own_prometheus, settings
):
    h = prometheus_history
    services.usage_pull(source=allocation, start=h.at(0), end=h.at(24))
    before = ledger(allocation)
    server = own_prometheus()
    allocation.prometheus_url = server.url
    allocation.save()
    settings.METERING_QUERY_HOURS = 6  # four queries for the day; the server dies after one

    run = services.usage_pull(
        source=allocation,
        start=h.at(0),
        end=h.at(24),
        progress=lambda hours: server.stop(),
    )
    assert run.status == MeteringRun.Status.FAILED
    assert run.error == (
        f"Could not reach Prometheus at {server.url}: is it running, and is the URL right?"
    )
    assert (run.queries, run.rows_written) == (0, 0)
    assert ledger(allocation) == before


def test_after_a_backfill_broke_off_the_gap_is_found_and_filled_to_the_exact_totals(
    allocation, prometheus_history, own_prometheus, settings
):
    h = prometheus_history
    services.usage_pull(source=allocation, start=h.at(0), end=h.at(48))
    reference = ledger(allocation)
    UsageRecord.objects.all().delete()
    MeteringRun.objects.all().delete()

    server = own_prometheus()
    allocation.prometheus_url = server.url
    allocation.save()
    settings.METERING_QUERY_HOURS = 12
    # The backfill as pull_usage runs it: one run per 12 hours. Prometheus stops after two.
    runs = []
    for start in (0, 12, 24, 36):
        runs.append(services.usage_pull(source=allocation, start=h.at(start), end=h.at(start + 12)))
        if start == 12:
            server.stop()
    assert [run.status for run in runs] == ["succeeded", "succeeded", "failed", "failed"]
    assert gaps(source=allocation, start=h.at(0), end=h.at(48)) == [(h.at(24), h.at(48))]
    assert not UsageRecord.objects.filter(hour_start__gte=h.at(24)).exists()

    port = int(server.url.rsplit(":", 1)[1])
    own_prometheus(port=port)  # back, at the same address
    filled = services.usage_backfill_gaps(source=allocation, since=h.at(0), now=h.at(48))
    assert [(run.window_start, run.window_end, run.status) for run in filled] == [
        (h.at(24), h.at(36), "succeeded"),
        (h.at(36), h.at(48), "succeeded"),
    ]
    assert gaps(source=allocation, start=h.at(0), end=h.at(48)) == []
    assert ledger(allocation) == reference


def test_the_scheduled_pull_takes_the_last_hours_again_and_the_hour_in_progress(
    allocation, prometheus_history
):
    h = prometheus_history
    run = services.usage_pull_recent(source=allocation, now=h.at(12.5))
    assert (run.window_start, run.window_end, run.trigger) == (h.at(9), h.at(13), "schedule")
    assert run.status == MeteringRun.Status.SUCCEEDED
    assert ledger(allocation)[("dept-marketing", "Tesla-T4", h.at(12))] == 15 * 60


def test_pull_usage_backfills_by_hand_and_reports_what_it_wrote(allocation, prometheus_history):
    h = prometheus_history
    outputs = []
    for _ in range(2):  # a second backfill of the same window changes nothing
        out, err = io.StringIO(), io.StringIO()
        call_command(
            "pull_usage",
            "--source=allocation",
            f"--start={h.day:%Y-%m-%d}",
            f"--end={h.at(48):%Y-%m-%dT%H:%M}",
            stdout=out,
            stderr=err,
        )
        assert "48/48" in err.getvalue()  # the progress bar reached the end
        outputs.append(out.getvalue())
    rows = UsageRecord.objects.filter(source=allocation).count()
    assert outputs == [f"allocation: {rows} hour rows written in 1 run(s)\n"] * 2


def test_pull_usage_fails_loudly_when_prometheus_is_away(allocation, settings, prometheus_history):
    allocation.prometheus_url = "http://127.0.0.1:9"  # discard port: nothing listens
    allocation.save()
    settings.METERING_RETRIES = 0
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 run\\(s\\) failed"):
        call_command(
            "pull_usage",
            "--source=allocation",
            "--start=2026-10-01",
            "--end=2026-10-02",
            "--no-progress",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "Could not reach Prometheus at http://127.0.0.1:9" in err.getvalue()
    out = io.StringIO()
    call_command("metering_status", stdout=out)
    assert "last error: Could not reach Prometheus at http://127.0.0.1:9" in out.getvalue()


def test_metering_status_lists_hours_covered_and_gaps(allocation, prometheus_history):
    h = prometheus_history
    services.usage_pull(source=allocation, start=h.at(0), end=h.at(10))
    services.usage_pull(source=allocation, start=h.at(14), end=h.at(20))
    out = io.StringIO()
    call_command("metering_status", stdout=out)
    text = out.getvalue()
    assert f"gap {h.at(10):%Y-%m-%d %H:%M} UTC - {h.at(14):%Y-%m-%d %H:%M} UTC" in text
    assert "covered: " in text and f"since {h.at(0):%Y-%m-%d %H:%M} UTC" in text


def test_the_admin_action_re_pulls_a_run_window(
    allocation, prometheus_history, client, world, monkeypatch, django_capture_on_commit_callbacks
):
    from portal.celery import app

    # On the Celery app itself: its configuration was read from the settings once, by
    # whichever test of this process used it first, and a settings change is not seen.
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    h = prometheus_history
    run = services.usage_pull(source=allocation, start=h.at(10), end=h.at(11))
    UsageRecord.objects.filter(source=allocation).update(quantity=Decimal("99"))
    client.force_login(world.user("it_admin"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/metering/meteringrun/",
            {"action": "repull", "_selected_action": [run.pk]},
            follow=True,
        )
    assert "Queued 1 re-pull(s)" in response.content.decode()
    assert ledger(allocation)[("dept-marketing", "NVIDIA-A100-SXM4-80GB", h.at(10))] == 2400
    assert allocation.runs.count() == 2
