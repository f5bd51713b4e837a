"""Synthetic usage backfilled with promtool and served by a real Prometheus answers the
portal's queries with the numbers the pods imply."""

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from demo import local_prometheus
from demo.local_prometheus import PrometheusProcess
from demo.synthetic import (
    CounterSample,
    LatencyProfile,
    Pod,
    expected_gpu_hours_by_hour,
    write_openmetrics,
)
from tests.conftest import require_prometheus

pytestmark = pytest.mark.integration

# Midnight two days ago: every sample is well over the 3 hours old that backfilling needs.
DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
QUOTED_NAMESPACE = 'team "quoted"'
BACKSLASH_POD = "notebook\\0"

PODS = [
    Pod(
        "render",
        "render-a",
        "NVIDIA-A100-SXM4-80GB",
        2,
        DAY.replace(hour=10),
        DAY.replace(hour=10, minute=20),
    ),
    # Off the minute on both ends and across an hour: the 1-minute subquery is off by up
    # to a minute per pod here.
    Pod(
        QUOTED_NAMESPACE,
        BACKSLASH_POD,
        "Tesla-T4",
        1,
        DAY.replace(hour=10, minute=5, second=10),
        DAY.replace(hour=11, minute=15, second=10),
    ),
    Pod(
        "training", "train-b", "Tesla-T4", 1, DAY.replace(hour=10, minute=30), DAY.replace(hour=12)
    ),
]
COUNTER_START = DAY.replace(hour=14)
# 0 -> 100 -> 250, a worker restart, then 30 -> 80: 330 GPU-seconds in all.
COUNTER_VALUES = [0, 100, 250, 30, 80]
LATENCY = LatencyProfile(
    namespace="render",
    start=DAY.replace(hour=8),
    end=DAY.replace(hour=11),
    requests_per_s=5,
    bucket_fractions={0.1: 0.5, 0.25: 0.9, 0.5: 0.96, 1.0: 0.99},
)

GPU_HOURS_BY_HOUR = (
    "sum by (namespace) (sum_over_time(("
    'kube_pod_container_resource_requests{resource="nvidia_com_gpu"}'
    ' * on (namespace, pod) group_left () (kube_pod_status_phase{phase="Running"} == 1)'
    ")[59m59s:1m] offset 1m)) / 60"
)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[PrometheusProcess]:
    require_prometheus()

    workdir = tmp_path_factory.mktemp("prometheus")
    openmetrics = workdir / "usage.om"
    write_openmetrics(
        openmetrics,
        pods=PODS,
        counters=[
            CounterSample(
                "render", "a100", "lipsync-render", COUNTER_START + timedelta(minutes=10 * i), value
            )
            for i, value in enumerate(COUNTER_VALUES)
        ],
        latencies=[LATENCY],
    )
    local_prometheus.backfill(openmetrics, workdir / "data")
    # 31 s: just over the 30 s sample step, standing in for the staleness markers that
    # backfilled blocks lack.
    with local_prometheus.running(workdir / "data", lookback_delta="31s") as server:
        yield server
    assert server.process.poll() is not None


def query(server: PrometheusProcess, promql: str, at: datetime) -> list[dict]:
    response = requests.get(
        f"{server.url}/api/v1/query", params={"query": promql, "time": at.timestamp()}, timeout=10
    )
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_gpu_hours_per_hour_match_the_pods(prometheus):
    response = requests.get(
        f"{prometheus.url}/api/v1/query_range",
        params={
            "query": GPU_HOURS_BY_HOUR,
            # Evaluated at hour ends: each point is the hour before it.
            "start": DAY.replace(hour=1).timestamp(),
            "end": (DAY + timedelta(days=1)).timestamp(),
            "step": 3600,
        },
        timeout=10,
    )
    response.raise_for_status()
    measured = {
        (
            series["metric"]["namespace"],
            datetime.fromtimestamp(at, UTC) - timedelta(hours=1),
        ): float(value)
        for series in response.json()["data"]["result"]
        for at, value in series["values"]
    }

    expected: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    for (namespace, _model, hour_start), gpu_hours in expected_gpu_hours_by_hour(PODS).items():
        expected[(namespace, hour_start)] += gpu_hours
    # Sampling each minute is off by at most a minute of each pod's GPUs.
    tolerance: dict[tuple[str, datetime], float] = defaultdict(float)
    for pod in PODS:
        for namespace, _model, hour_start in expected_gpu_hours_by_hour([pod]):
            tolerance[(namespace, hour_start)] += pod.gpus / 60

    assert measured[("render", DAY.replace(hour=10))] == pytest.approx(2 * 20 / 60)
    assert expected[("render", DAY.replace(hour=10))] == Decimal("0.666667")
    # Lingering requests (phase 0) after a pod ends add nothing: no stray hours.
    assert set(measured) == set(expected)
    for key, gpu_hours in expected.items():
        assert measured[key] == pytest.approx(float(gpu_hours), abs=tolerance[key]), key


def test_escaped_label_values_round_trip(prometheus):
    def values(label: str) -> list[str]:
        response = requests.get(f"{prometheus.url}/api/v1/label/{label}/values", timeout=10)
        response.raise_for_status()
        return response.json()["data"]

    assert QUOTED_NAMESPACE in values("namespace")
    assert BACKSLASH_POD in values("pod")
    assert QUOTED_NAMESPACE in values("exported_namespace")


def test_histogram_p95_is_the_one_the_bucket_fractions_imply(prometheus):
    [series] = query(
        prometheus,
        "histogram_quantile(0.95, sum by (le, namespace) "
        "(rate(http_request_duration_seconds_bucket[1h])))",
        DAY.replace(hour=10),
    )
    # 90 % of requests are within 0.25 s and 96 % within 0.5 s: the 95th percentile is
    # 5/6 of the way through that bucket.
    assert series["metric"] == {"namespace": "render"}
    assert float(series["value"][1]) == pytest.approx(0.25 + 0.25 * 5 / 6)


def test_counter_increase_counts_across_a_reset(prometheus):
    [series] = query(
        prometheus,
        'increase(portal_job_gpu_seconds_total{namespace="render"}[41m])',
        COUNTER_START + timedelta(minutes=40),
    )
    assert series["metric"] == {
        "namespace": "render",
        "gpu_class": "a100",
        "kind": "lipsync-render",
    }
    assert float(series["value"][1]) == pytest.approx(250 + 80)


def test_the_server_stops_when_the_block_raises(tmp_path):
    require_prometheus()
    started: list[PrometheusProcess] = []

    with pytest.raises(ZeroDivisionError), local_prometheus.running(tmp_path / "data") as server:
        started.append(server)
        assert requests.get(f"{server.url}/-/ready", timeout=10).status_code == 200
        _ = 1 / 0

    assert started[0].process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{started[0].url}/-/ready", timeout=2)
