"""Which 60 samples make an hour: kube-state-metrics is scraped every 30 s, so a pod's
start or end shows up to one scrape interval late. The built-in allocation source samples
at minutes :01 to :60 (each sample describes the minute that ends at it): every
department-hour is within one GPU-minute per GPU of each pod start or end inside that
hour, and a pod that merely runs across the hour's boundaries is exact. The old choice
(:00 to :59) is shown to break that bound, so the test can tell the two apart."""

import datetime as dt
import importlib
from collections import defaultdict
from decimal import Decimal

import pytest

from demo import local_prometheus, synthetic
from metering import services
from metering.models import MeteringRun, MetricSource, UsageRecord
from tests.conftest import require_prometheus
from tests.integration.conftest import A100

pytestmark = pytest.mark.integration

SCRAPE_S = 30
# Scrape grids of three kube-state-metrics instances (seconds past each half minute).
PHASES = {"lag-0": 0.0, "lag-11": 11.3, "lag-29": 29.9}


def _pods(day: dt.datetime) -> list[synthetic.Pod]:
    def at(h: int, m: int = 0, s: float = 0) -> dt.datetime:
        return day + dt.timedelta(hours=h, minutes=m, seconds=s)

    shapes = [
        # (name, gpus, start, end)
        ("across-boundaries", 1, at(2), at(5)),  # whole hours, edges on the boundaries
        ("mid-hours", 1, at(6, 20), at(7, 40)),
        ("inside-one-hour", 2, at(8, 0, 30), at(8, 59, 45)),
        ("twenty-seconds-across", 1, at(9, 59, 50), at(10, 0, 10)),
        ("ends-on-the-hour", 3, at(11, 30, 17.5), at(13)),
        ("forty-seconds", 2, at(14), at(14, 0, 40)),
        ("long-runner", 4, at(1, 45), at(20, 15)),
    ]
    return [
        synthetic.Pod(namespace, name, A100, gpus, start, end, scrape_phase_s=phase)
        for namespace, phase in PHASES.items()
        for name, gpus, start, end in shapes
    ]


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _edge_allowance(pods) -> dict:
    """Per (namespace, hour): one GPU-minute (60 GPU-seconds) per GPU for each pod start
    or end inside the hour; 0 for an hour that no start or end falls in. A pod runs over
    ``[start, end)``: its start is in the hour that holds it, its end in the hour of its
    last running instant (a pod that stops at 05:00 ends in the 04:00 hour)."""
    allowance = defaultdict(int)
    for pod in pods:
        for hour in (_hour(pod.start), _hour(pod.end - dt.timedelta(microseconds=1))):
            allowance[(pod.namespace, hour)] += 60 * pod.gpus
    return allowance


@pytest.fixture(scope="module")
def lagging_prometheus(tmp_path_factory):
    require_prometheus()
    root = tmp_path_factory.mktemp("sampling")
    day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day -= dt.timedelta(days=2)
    pods = _pods(day)
    synthetic.write_openmetrics(root / "history.om", pods=pods, step_s=SCRAPE_S, dcgm=False)
    local_prometheus.backfill(root / "history.om", root / "data")
    with local_prometheus.running(
        root / "data", lookback_delta=f"{SCRAPE_S + 1}s", log_path=root / "prometheus.log"
    ) as server:
        yield server.url, day, pods


def _pull(source, url, day) -> dict:
    source.prometheus_url = url
    source.save()
    run = services.usage_pull(source=source, start=day, end=day + dt.timedelta(hours=24))
    assert run.status == MeteringRun.Status.SUCCEEDED, run.error
    by_hour = defaultdict(Decimal)
    for namespace, hour, seconds in UsageRecord.objects.filter(source=source).values_list(
        "namespace", "hour_start", "quantity"
    ):
        by_hour[(namespace, hour)] += seconds
    return by_hour


def _truth(pods) -> dict:
    truth = defaultdict(Decimal)
    for (namespace, _, hour), seconds in synthetic.expected_gpu_seconds_by_hour(pods).items():
        truth[(namespace, hour)] += seconds
    return truth


def _errors(measured: dict, pods) -> dict:
    """(namespace, hour) -> (error in GPU-seconds, allowance) for every hour either has."""
    truth, allowance = _truth(pods), _edge_allowance(pods)
    return {
        key: (measured.get(key, Decimal(0)) - truth.get(key, Decimal(0)), allowance[key])
        for key in set(measured) | set(truth)
    }


def test_each_hour_is_within_a_gpu_minute_per_gpu_of_each_edge_inside_it(world, lagging_prometheus):
    url, day, pods = lagging_prometheus
    measured = _pull(MetricSource.objects.get(name="allocation"), url, day)
    errors = _errors(measured, pods)
    assert len(errors) > 3 * 15  # every namespace, every hour a pod touched
    for key, (error, allowance) in sorted(errors.items()):
        assert abs(error) <= allowance, (key, error, allowance)
    # Hours that a pod merely runs across (no edge inside) are exact, whatever the lag.
    exact = [key for key, (_, allowance) in errors.items() if allowance == 0]
    assert len(exact) == 3 * 8  # 03, 05, 13, 15 to 19
    assert all(errors[key][0] == 0 for key in exact)


def test_the_old_samples_at_minutes_0_to_59_shift_a_minute_into_the_next_hour(
    world, lagging_prometheus
):
    url, day, pods = lagging_prometheus
    shipped = importlib.import_module("metering.migrations.0004_ledger_in_gpu_seconds")
    old = MetricSource.objects.create(
        name="allocation-minutes-0-to-59",
        query_template=shipped.IN_SECONDS["allocation"][1],
        namespace_label="namespace",
        model_label="gpu_model",
    )
    errors = _errors(_pull(old, url, day), pods)
    broken = {key: value for key, value in errors.items() if abs(value[0]) > value[1]}
    # The pod that ends at 05:00 (last scraped before it) is counted in the 05:00 hour, in
    # which it never ran, wherever the scrape grid is not on the hour.
    for namespace in ("lag-11", "lag-29"):
        assert broken[(namespace, day + dt.timedelta(hours=5))][0] == 60
