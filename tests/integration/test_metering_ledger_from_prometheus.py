"""The hourly ledger pulled from a real Prometheus equals the GPU-hours computed directly
from the pods that made the history: exact to within one minute per pod, with owners and
GPU classes resolved and nothing dropped."""

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from demo.synthetic import expected_gpu_hours_by_hour
from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord
from metering.quantities import gpu_hours
from tests.integration.conftest import A100, MI300, T4

pytestmark = pytest.mark.integration

ONE_MINUTE = Decimal("0.016667")  # 1/60 GPU-hour, as the ledger rounds it


def ledger(source: MetricSource) -> dict:
    """The source's rows in GPU-hours (the ledger keeps exact GPU-seconds)."""
    return {
        (r.namespace, r.gpu_model, r.hour_start): gpu_hours(r.quantity)
        for r in UsageRecord.objects.filter(source=source)
        if r.quantity
    }


def gpus_by_hour(pods, *, extra_minute: bool = False) -> dict:
    """GPUs of the pods that touch each (namespace, model, hour): the tolerance, one
    minute per GPU. ``extra_minute`` also counts the minute just after a pod's end."""
    gpus = defaultdict(int)
    for pod in pods:
        end = pod.end + dt.timedelta(minutes=1) if extra_minute else pod.end
        hour = pod.start.replace(minute=0, second=0, microsecond=0)
        while hour < end:
            gpus[(pod.namespace, pod.gpu_model, hour)] += pod.gpus
            hour += dt.timedelta(hours=1)
    return gpus


@pytest.fixture
def pulled(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="allocation")
    run = services.usage_pull(
        source=source, start=prometheus_history.day, end=prometheus_history.at(48)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    return source, run


def test_a_pod_with_two_gpus_for_twenty_minutes_is_two_thirds_of_a_gpu_hour(
    pulled, prometheus_history
):
    source, _ = pulled
    record = UsageRecord.objects.get(
        source=source,
        namespace="dept-marketing",
        gpu_model=A100,
        hour_start=prometheus_history.at(10),
    )
    assert record.quantity == 2 * 20 * 60  # GPU-seconds, exact: 0.667 GPU-hours


def test_every_hour_matches_the_pods_to_within_a_minute_per_pod(pulled, prometheus_history):
    source, _ = pulled
    expected = expected_gpu_hours_by_hour(prometheus_history.pods)
    pods_in = gpus_by_hour(prometheus_history.pods)
    actual = ledger(source)
    assert set(actual) == set(expected)
    for key, hours in expected.items():
        # Off by at most one minute of each GPU of each pod in the hour.
        assert abs(actual[key] - hours) <= pods_in[key] * ONE_MINUTE, key


def test_whole_pod_totals_match_to_within_a_minute(pulled, prometheus_history):
    source, _ = pulled
    for pod in prometheus_history.pods:
        expected = Decimal(pod.gpus * (pod.end - pod.start).total_seconds()) / 3600
        metered = sum(
            value
            for (namespace, model, _), value in ledger(source).items()
            if (namespace, model) == (pod.namespace, pod.gpu_model)
        )
        sharing = [
            p
            for p in prometheus_history.pods
            if (p.namespace, p.gpu_model) == (pod.namespace, pod.gpu_model)
        ]
        if len(sharing) == 1:
            assert abs(metered - expected) <= pod.gpus * ONE_MINUTE, pod.name


def test_owners_and_gpu_classes_are_resolved_and_nothing_is_dropped(
    pulled, world, prometheus_history
):
    source, run = pulled
    hour = prometheus_history.at(10)
    rows = {
        (r.namespace, r.gpu_model): (r.department, r.gpu_class)
        for r in UsageRecord.objects.filter(source=source, hour_start=hour)
    }
    assert rows[("dept-marketing", A100)] == (world.marketing, world.a100)
    assert rows[("dept-marketing", T4)] == (world.marketing, world.t4)
    assert rows[("dept-training", A100)] == (world.training, world.a100)
    # Nobody owns team-research: Unallocated. No class matches the MI300: Unknown model.
    assert rows[("team-research", T4)] == (None, world.t4)
    assert rows[("dept-training", MI300)] == (world.training, None)
    assert run.series == len({(p.namespace, p.gpu_model) for p in prometheus_history.pods})
    assert run.queries == 1 and run.warnings == []


def test_the_device_source_reads_the_namespace_from_exported_namespace(
    world, settings, prometheus_history
):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="device")
    run = services.usage_pull(
        source=source, start=prometheus_history.day, end=prometheus_history.at(48)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    actual = ledger(source)
    expected = expected_gpu_hours_by_hour(prometheus_history.pods)
    # The exporter's series simply stop (no kube-state-metrics phase to join on), so the
    # minute at a pod's end may still count: one minute per GPU, never more.
    gpus = gpus_by_hour(prometheus_history.pods, extra_minute=True)
    assert set(actual) <= set(gpus)
    for key in set(actual) | set(expected):
        assert abs(actual.get(key, 0) - expected.get(key, 0)) <= gpus[key] * ONE_MINUTE, key
    quoted = UsageRecord.objects.get(
        source=source, namespace='weird"ns', hour_start=prometheus_history.at(20)
    )
    assert (quoted.quantity, quoted.department) == (3600, None)


def test_utilisation_is_busy_gpu_hours(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="utilisation")
    services.usage_pull(source=source, start=prometheus_history.at(8), end=prometheus_history.at(9))
    # 4 A100s at 50 % for the whole hour: 2 busy GPU-hours.
    record = UsageRecord.objects.get(source=source, namespace="dept-training", gpu_model=A100)
    assert record.quantity == 2 * 3600


def test_a_label_filter_with_a_quote_is_escaped_into_the_query(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="device")
    source.label_filters = {"exported_namespace": 'weird"ns'}
    source.full_clean()
    source.save()
    run = services.usage_pull(
        source=source, start=prometheus_history.day, end=prometheus_history.at(48)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    assert set(UsageRecord.objects.filter(source=source).values_list("namespace", flat=True)) == {
        'weird"ns'
    }


def test_the_jobs_counter_survives_a_worker_restart(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="jobs")
    run = services.usage_pull(
        source=source, start=prometheus_history.at(9), end=prometheus_history.at(13)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    hours = dict(UsageRecord.objects.filter(source=source).values_list("hour_start", "quantity"))
    assert sorted(hours) == [prometheus_history.at(h) for h in (9, 10, 11, 12)]
    # One GPU busy the whole time: one GPU-hour per hour. The hour with the restart loses
    # only the 15 s the counter could not see, instead of going negative or doubling.
    for hour, gpu_seconds in hours.items():
        assert 0.98 * 3600 <= gpu_seconds <= 1.02 * 3600, hour
    record = UsageRecord.objects.filter(source=source).first()
    assert (record.department, record.gpu_class) == (world.marketing, world.t4)


def test_latency_is_the_hourly_p95_in_milliseconds(world, settings, prometheus_history):
    settings.PROMETHEUS_URL = prometheus_history.url
    source = MetricSource.objects.get(name="latency")
    run = services.usage_pull(
        source=source, start=prometheus_history.at(8), end=prometheus_history.at(10)
    )
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    values = list(UsageRecord.objects.filter(source=source).values_list("namespace", "quantity"))
    # p95 lies between the 0.25 s (90 %) and 0.5 s (96 %) buckets: 250 + 5/6 * 250 ms.
    assert [ns for ns, _ in values] == ["dept-customer-service"] * 2
    for _, p95_ms in values:
        assert abs(p95_ms - Decimal("458.333")) < 1
