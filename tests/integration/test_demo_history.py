"""The demo's GPU history: the story it tells, and that `make demo` writes it only once."""

import datetime as dt

import pytest

from demo import scenario
from tests.conftest import require_prometheus

pytestmark = pytest.mark.integration

END = dt.datetime(2026, 11, 25, 10, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _blocks(data_dir) -> set[str]:
    return {meta.parent.name for meta in data_dir.glob("*/meta.json")}


def _gpus_in_use(pods, moment: dt.datetime) -> int:
    return sum(pod.gpus for pod in pods if pod.start <= moment < pod.end)


def test_the_history_tells_each_departments_story_the_same_way_every_time():
    history = scenario.demo_history(end=END, days=90)

    assert history == scenario.demo_history(end=END, days=90)
    assert (history.start, history.end) == (END - dt.timedelta(days=90), END)
    assert all(history.start <= pod.start < pod.end <= END for pod in history.pods)
    assert {(pod.namespace, pod.gpu_model) for pod in history.pods} == {
        ("dept-marketing", scenario.T4_MODEL),
        ("dept-customer-service", scenario.A100_MODEL),
        ("dept-training", scenario.A100_MODEL),
        ("dept-training", scenario.UNKNOWN_MODEL),  # no GPU class: *Unknown model*
        ("team-research", scenario.T4_MODEL),  # no department: *Unallocated*
    }

    renders = [pod for pod in history.pods if pod.name.startswith("lipsync-render-")]
    assert len(renders) > 1000
    assert all(10 * MINUTE <= pod.end - pod.start <= 60 * MINUTE for pod in renders)
    assert all(pod.start.hour >= 23 or pod.start.hour < 6 for pod in renders)

    agent = [pod for pod in history.pods if pod.namespace == "dept-customer-service"]
    hours = [history.start + dt.timedelta(hours=h, minutes=30) for h in range(90 * 24)]
    in_use = [_gpus_in_use(agent, hour) for hour in hours]
    assert set(in_use) == {1, 2}  # around the clock, a second GPU at the peaks
    daytime = [n for hour, n in zip(hours, in_use, strict=True) if 10 <= hour.hour < 17]
    night = [n for hour, n in zip(hours, in_use, strict=True) if hour.hour < 6]
    assert sum(daytime) / len(daytime) > 1.5 and set(night) == {1}

    jobs = [pod for pod in history.pods if pod.name.startswith("assistant-train-")]
    assert len(jobs) > 15
    assert all(pod.gpus >= 2 and pod.end - pod.start >= dt.timedelta(hours=3) for pod in jobs)
    a100 = [pod for pod in history.pods if pod.gpu_model == scenario.A100_MODEL]
    assert max(_gpus_in_use(a100, hour) for hour in hours) <= 8  # the demo's A100 capacity

    assert {profile.namespace for profile in history.latencies} == {"dept-customer-service"}
    assert history.latencies[0].start == history.start
    assert history.latencies[-1].end == END - dt.timedelta(seconds=scenario.HISTORY_STEP_S)


def test_the_history_is_written_once_and_again_only_on_rebuild(tmp_path):
    require_prometheus()
    data_dir = tmp_path / "prometheus"
    now = dt.datetime.now(dt.UTC)

    written = scenario.demo_history_ensure(data_dir=data_dir, days=2)

    assert written is not None and written.samples > 10_000
    hour = now.replace(minute=0, second=0, microsecond=0)
    assert written.end == hour - scenario.HISTORY_END_MARGIN
    first, last = scenario.demo_history_span(data_dir)
    assert first <= written.start < written.start + dt.timedelta(hours=2) and first < last
    assert last < now - dt.timedelta(hours=3)  # promtool stays out of a server's head block
    assert sorted(path.name for path in tmp_path.iterdir()) == ["prometheus"]
    blocks = _blocks(data_dir)

    assert scenario.demo_history_ensure(data_dir=data_dir, days=2) is None
    assert _blocks(data_dir) == blocks

    assert scenario.demo_history_ensure(data_dir=data_dir, days=1, rebuild=True) is not None
    assert _blocks(data_dir) and not _blocks(data_dir) & blocks  # new blocks, old ones gone
    assert scenario.demo_history_span(data_dir)[0] > first
