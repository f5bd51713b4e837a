"""Synthetic GPU usage written as OpenMetrics text, for tests, the demo and benchmarks.

The file imitates what the portal finds in a real Prometheus: kube-state-metrics (pod GPU
requests, pod phase, node labels), the NVIDIA DCGM exporter (per-GPU utilisation), the
portal workers' own GPU-seconds counter and a service's request-duration histogram. It is
meant for ``promtool tsdb create-blocks-from openmetrics`` (see
:mod:`demo.local_prometheus`), so it follows what that parser accepts: metric families
are not interleaved, each series' timestamps strictly increase, and the text ends with
``# EOF``.

:func:`expected_gpu_hours_by_hour` is the pure-Python answer the same pods should give, for
checking the queries that the portal runs against Prometheus.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from os import PathLike
from typing import TextIO

__all__ = [
    "CounterSample",
    "LatencyProfile",
    "Pod",
    "expected_gpu_hours_by_hour",
    "expected_gpu_seconds_by_hour",
    "node_for_gpu_model",
    "write_openmetrics",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_GPU_UUID_NAMESPACE = uuid.UUID("6f1c1a52-5f43-4c1e-9a0b-2f5d1c3e7a10")


@dataclass(frozen=True)
class Pod:
    """A pod that requested ``gpus`` GPUs of ``gpu_model`` and ran over ``[start, end)``."""

    namespace: str
    name: str
    gpu_model: str  # value of the node label nvidia.com/gpu.product, e.g. "NVIDIA-A100-SXM4-80GB"
    gpus: int
    start: datetime  # timezone-aware
    end: datetime  # exclusive
    node: str = ""  # "" -> node_for_gpu_model(gpu_model)
    utilisation_pct: float = 50.0
    # None: sampled from the pod's start, so the first sample sees it at once. A number:
    # sampled on the scrape grid ``phase + k * step_s`` (seconds since the epoch), as a
    # real scrape sees it: the start and the end show up to one scrape interval late.
    scrape_phase_s: float | None = None
    # A MIG profile ("1g.10gb"): the pod requests ``gpus`` instances of it
    # (nvidia.com/mig-1g.10gb) on a node whose product label is ``gpu_model``.
    mig_profile: str = ""
    # The cluster it ran in: a ``cluster`` label on each of its series (as a Thanos or
    # Mimir gathering several clusters' Prometheus adds), none when blank.
    cluster: str = ""

    @property
    def resource(self) -> str:
        """The resource label kube-state-metrics gives the request."""
        if not self.mig_profile:
            return "nvidia_com_gpu"
        return "nvidia_com_mig_" + re.sub(r"[^a-zA-Z0-9]", "_", self.mig_profile)

    @property
    def metered_model(self) -> str:
        """The GPU model the built-in allocation source reports for the pod's GPUs."""
        sanitized = self.resource.removeprefix("nvidia_com_mig_")
        return f"{self.gpu_model} MIG {sanitized}" if self.mig_profile else self.gpu_model


@dataclass(frozen=True)
class CounterSample:
    """One scraped value of the portal workers' ``portal_job_gpu_seconds_total`` counter.

    A value lower than the previous one of the same series is a counter reset (a worker
    restart), which is what counter-reset tests need.
    """

    namespace: str
    gpu_class: str
    kind: str
    at: datetime
    value: float
    cluster: str = ""  # a ``cluster`` label, when set


@dataclass(frozen=True)
class LatencyProfile:
    """A service in ``namespace`` answering ``requests_per_s`` over ``[start, end]``.

    ``bucket_fractions`` maps a bucket's upper bound ``le`` (seconds) to the cumulative
    fraction of requests that took at most that long; ``le=inf`` is implied at 1.0.
    """

    namespace: str
    start: datetime
    end: datetime
    requests_per_s: float
    bucket_fractions: dict[float, float]


def node_for_gpu_model(gpu_model: str) -> str:
    """The node name a pod gets when it names none: one stable node per GPU model."""
    return "node-" + re.sub(r"[^a-z0-9]+", "-", gpu_model.lower()).strip("-")


def write_openmetrics(
    path: str | PathLike[str],
    *,
    pods: Iterable[Pod] = (),
    counters: Iterable[CounterSample] = (),
    latencies: Iterable[LatencyProfile] = (),
    step_s: int = 30,
    linger_s: int = 600,
    dcgm: bool = True,
) -> int:
    """Write the series for ``pods``, ``counters`` and ``latencies`` to ``path``.

    Lines are streamed to the file as they are made, so memory does not grow with the
    length of the history. Pods sample every ``step_s`` seconds from their start; a
    finished pod keeps its GPU request (and phase 0) for ``linger_s`` seconds, as
    kube-state-metrics does while the pod object exists. Timestamps are kept to the
    millisecond, Prometheus's resolution. ``dcgm=False`` leaves out the DCGM exporter's
    series (one per GPU of each pod), for data that only the ``allocation`` source reads:
    less than half the size.

    Returns the number of samples written. Raises ``ValueError`` for input Prometheus
    could not take (naive datetimes, a pod ending before it starts, the same pod name
    reused while the previous one still lingers, two GPU models on one node, repeated
    counter timestamps, overlapping latency profiles, bucket fractions that decrease).
    """
    if step_s <= 0 or linger_s < 0:
        raise ValueError("step_s must be positive and linger_s not negative")
    pods = sorted(pods, key=lambda pod: (pod.namespace, pod.name, _ms(pod.start)))
    _check_pods(pods, linger_s)
    step_ms = step_s * 1000
    linger_ms = linger_s * 1000
    samples = 0
    with open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        if pods:
            samples += _write_node_labels(out, pods, step_ms, linger_ms)
            samples += _write_requests(out, pods, step_ms, linger_ms)
            samples += _write_phase(out, pods, step_ms, linger_ms)
            if dcgm:
                samples += _write_gpu_util(out, pods, step_ms)
        samples += _write_counters(out, counters)
        samples += _write_latencies(out, latencies, step_ms)
        out.write("# EOF\n")
    return samples


def expected_gpu_hours_by_hour(
    pods: Iterable[Pod],
) -> dict[tuple[str, str, datetime], Decimal]:
    """GPU-hours per (namespace, gpu_model, UTC hour start): what the pods really used.

    Each pod counts ``gpus`` times the seconds of ``[start, end)`` inside the hour / 3600. The
    sum is exact (integer microseconds) and quantized once to 6 decimal places; hours a
    pod does not touch are absent.
    """
    us_per_hour = Decimal(3_600_000_000)
    return {
        key: (Decimal(value) / us_per_hour).quantize(Decimal("0.000001"))
        for key, value in _gpu_microseconds_by_hour(pods).items()
    }


def expected_gpu_seconds_by_hour(
    pods: Iterable[Pod],
) -> dict[tuple[str, str, datetime], Decimal]:
    """GPU-seconds per (namespace, gpu_model, UTC hour start), exact (to the microsecond):
    the unit the ledger keeps."""
    return {
        key: Decimal(value).scaleb(-6) for key, value in _gpu_microseconds_by_hour(pods).items()
    }


def _gpu_microseconds_by_hour(pods: Iterable[Pod]) -> dict[tuple[str, str, datetime], int]:
    gpu_us: dict[tuple[str, str, datetime], int] = defaultdict(int)
    for pod in pods:
        start = _utc(pod.start)
        end = _utc(pod.end)
        hour_start = start.replace(minute=0, second=0, microsecond=0)
        while hour_start < end:
            hour_end = hour_start + _HOUR
            inside = min(end, hour_end) - max(start, hour_start)
            gpu_us[(pod.namespace, pod.metered_model, hour_start)] += pod.gpus * (
                inside // timedelta(microseconds=1)
            )
            hour_start = hour_end
    return {key: value for key, value in gpu_us.items() if value}


# --- series writers: one metric family each, so families are never interleaved ----------


def _write_node_labels(out: TextIO, pods: list[Pod], step_ms: int, linger_ms: int) -> int:
    # One series per node, covering its pods with an hour to spare each side, so joins on
    # the node label never miss a pod sample at the edges.
    spans: dict[tuple[str, str], tuple[str, int, int]] = {}
    for pod in pods:
        node = (pod.cluster, _node(pod))
        start = _ms(pod.start) - 3_600_000
        stop = _ms(pod.end) + linger_ms + 3_600_000
        if node in spans:
            model, first, last = spans[node]
            if model != pod.gpu_model:
                raise ValueError(
                    f"node {node!r} has pods of GPU models {model!r} and {pod.gpu_model!r}"
                )
            spans[node] = (model, min(first, start), max(last, stop))
        else:
            spans[node] = (pod.gpu_model, start, stop)
    out.write("# TYPE kube_node_labels gauge\n")
    samples = 0
    for (cluster, node), (model, first, last) in sorted(spans.items()):
        labels = _labels(
            **({"cluster": cluster} if cluster else {}),
            node=node,
            label_nvidia_com_gpu_product=model,
        )
        prefix = "kube_node_labels" + labels + " 1 "
        samples += _write_constant(out, prefix, _grid(first, last + 1, step_ms))
    return samples


def _seen_ms(pod: Pod, at: datetime, step_ms: int) -> int:
    """The first sample instant at or after ``at``: on the pod's scrape grid, if it has one."""
    at_ms = _ms(at)
    if pod.scrape_phase_s is None:
        return at_ms
    phase_ms = round(pod.scrape_phase_s * 1000) % step_ms
    return phase_ms + -(-(at_ms - phase_ms) // step_ms) * step_ms


def _write_requests(out: TextIO, pods: list[Pod], step_ms: int, linger_ms: int) -> int:
    out.write("# TYPE kube_pod_container_resource_requests gauge\n")
    samples = 0
    for pod in pods:
        labels = _labels(
            **_cluster_of(pod),
            namespace=pod.namespace,
            pod=pod.name,
            container="main",
            node=_node(pod),
            resource=pod.resource,
            unit="integer",
        )
        prefix = f"kube_pod_container_resource_requests{labels} {pod.gpus} "
        stop = _seen_ms(pod, pod.end, step_ms) + linger_ms + 1
        samples += _write_constant(
            out, prefix, _grid(_seen_ms(pod, pod.start, step_ms), stop, step_ms)
        )
    return samples


def _write_phase(out: TextIO, pods: list[Pod], step_ms: int, linger_ms: int) -> int:
    out.write("# TYPE kube_pod_status_phase gauge\n")
    samples = 0
    for pod in pods:
        labels = _labels(**_cluster_of(pod), namespace=pod.namespace, pod=pod.name, phase="Running")
        start, end = _seen_ms(pod, pod.start, step_ms), _seen_ms(pod, pod.end, step_ms)
        samples += _write_constant(
            out, f"kube_pod_status_phase{labels} 1 ", _grid(start, end, step_ms)
        )
        # The first 0 is exactly at the end, so anything joined on phase == 1 stops there
        # rather than up to one step later.
        samples += _write_constant(
            out, f"kube_pod_status_phase{labels} 0 ", _grid(end, end + linger_ms + 1, step_ms)
        )
    return samples


def _write_gpu_util(out: TextIO, pods: list[Pod], step_ms: int) -> int:
    out.write("# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n")
    samples = 0
    for pod in pods:
        node = _node(pod)
        value = _number(pod.utilisation_pct)
        for index in range(pod.gpus):
            mig = (
                {"GPU_I_PROFILE": pod.mig_profile, "GPU_I_ID": f"{index + 1}"}
                if pod.mig_profile
                else {}
            )
            labels = _labels(
                **_cluster_of(pod),
                gpu="0" if pod.mig_profile else str(index),
                UUID=f"GPU-{uuid.uuid5(_GPU_UUID_NAMESPACE, f'{node}/{index}')}",
                device="nvidia0" if pod.mig_profile else f"nvidia{index}",
                modelName=pod.gpu_model,
                Hostname=node,
                exported_namespace=pod.namespace,
                exported_pod=pod.name,
                exported_container="main",
                **mig,
            )
            # No linger: the exporter drops the pod labels as soon as the pod is gone.
            samples += _write_constant(
                out,
                f"DCGM_FI_DEV_GPU_UTIL{labels} {value} ",
                _grid(_seen_ms(pod, pod.start, step_ms), _seen_ms(pod, pod.end, step_ms), step_ms),
            )
    return samples


def _write_counters(out: TextIO, counters: Iterable[CounterSample]) -> int:
    series: dict[tuple[str, str, str, str], list[tuple[int, float]]] = defaultdict(list)
    for sample in counters:
        series[(sample.cluster, sample.namespace, sample.gpu_class, sample.kind)].append(
            (_ms(sample.at), sample.value)
        )
    if not series:
        return 0
    out.write("# TYPE portal_job_gpu_seconds counter\n")
    samples = 0
    for (cluster, namespace, gpu_class, kind), points in sorted(series.items()):
        points.sort(key=lambda point: point[0])
        for (earlier, _), (later, _) in pairwise(points):
            if earlier == later:
                raise ValueError(
                    f"two counter samples at {_timestamp(later)} for "
                    f"{(namespace, gpu_class, kind)!r}"
                )
        prefix = "portal_job_gpu_seconds_total" + _labels(
            **({"cluster": cluster} if cluster else {}),
            namespace=namespace,
            gpu_class=gpu_class,
            kind=kind,
        )
        out.writelines(f"{prefix} {_number(value)} {_timestamp(at)}\n" for at, value in points)
        samples += len(points)
    return samples


def _write_latencies(out: TextIO, latencies: Iterable[LatencyProfile], step_ms: int) -> int:
    by_namespace: dict[str, list[LatencyProfile]] = defaultdict(list)
    for profile in latencies:
        by_namespace[profile.namespace].append(profile)
    if not by_namespace:
        return 0
    out.write("# TYPE http_request_duration_seconds histogram\n")
    samples = 0
    for namespace, profiles in sorted(by_namespace.items()):
        profiles.sort(key=lambda profile: _ms(profile.start))
        # Successive profiles of one namespace are one series each: counts carry over,
        # so a change of profile is not mistaken for a counter reset.
        carried: dict[float, float] = defaultdict(float)
        carried_sum = 0.0
        last_ms: int | None = None
        for profile in profiles:
            start, end = _ms(profile.start), _ms(profile.end)
            if end < start:
                raise ValueError(f"latency profile of {namespace!r} ends before it starts")
            if last_ms is not None and start <= last_ms:
                raise ValueError(f"latency profiles of {namespace!r} overlap")
            bounds, fractions = _buckets(profile.bucket_fractions)
            mean_s = _mean_latency_s(bounds, fractions)
            bucket_prefixes = [
                "http_request_duration_seconds_bucket"
                + _labels(namespace=namespace, le=_le(bound))
                + " "
                for bound in bounds
            ]
            count_prefix = "http_request_duration_seconds_count" + _labels(namespace=namespace)
            sum_prefix = "http_request_duration_seconds_sum" + _labels(namespace=namespace)
            base = [carried[bound] for bound in bounds]
            base_count = carried[math.inf]
            requests = 0.0
            for at in range(start, end + 1, step_ms):
                requests = profile.requests_per_s * (at - start) / 1000
                ts = _timestamp(at)
                out.writelines(
                    f"{prefix}{base[i] + fractions[i] * requests!r} {ts}\n"
                    for i, prefix in enumerate(bucket_prefixes)
                )
                out.write(f"{count_prefix} {base_count + requests!r} {ts}\n")
                out.write(f"{sum_prefix} {carried_sum + mean_s * requests!r} {ts}\n")
                samples += len(bounds) + 2
                last_ms = at
            for i, bound in enumerate(bounds):
                carried[bound] = base[i] + fractions[i] * requests
            carried_sum += mean_s * requests
    return samples


# --- helpers ------------------------------------------------------------------------------


def _check_pods(pods: list[Pod], linger_s: int) -> None:
    # ``pods`` is sorted by (namespace, name, start): a reused pod name is the same
    # kube-state-metrics series, so it may only come back once the previous pod is gone.
    previous: Pod | None = None
    for pod in pods:
        if _ms(pod.end) < _ms(pod.start):
            raise ValueError(f"pod {pod.namespace}/{pod.name} ends before it starts")
        if pod.gpus < 0:
            raise ValueError(f"pod {pod.namespace}/{pod.name} requests {pod.gpus} GPUs")
        if (
            previous is not None
            and (previous.namespace, previous.name) == (pod.namespace, pod.name)
            and pod.start <= previous.end + timedelta(seconds=linger_s)
        ):
            raise ValueError(
                f"pod {pod.namespace}/{pod.name} starts again before the previous one "
                f"is gone (end + linger_s)"
            )
        previous = pod


def _buckets(bucket_fractions: dict[float, float]) -> tuple[list[float], list[float]]:
    """Upper bounds (ending with +Inf) and their cumulative fractions, validated."""
    bounds = sorted(float(bound) for bound in bucket_fractions)
    fractions = [float(bucket_fractions[bound]) for bound in bounds]
    if bounds and bounds[-1] == math.inf:
        if fractions[-1] != 1.0:
            raise ValueError("the +Inf bucket holds every request: its fraction must be 1.0")
    else:
        bounds.append(math.inf)
        fractions.append(1.0)
    if any(not 0.0 <= fraction <= 1.0 for fraction in fractions) or any(
        later < earlier for earlier, later in pairwise(fractions)
    ):
        raise ValueError(f"bucket fractions must rise from 0 to 1 with le: {bucket_fractions!r}")
    return bounds, fractions


def _mean_latency_s(bounds: list[float], fractions: list[float]) -> float:
    # A histogram does not say where inside a bucket a request fell: take the bucket's
    # middle, and the largest finite bound for requests in the +Inf bucket.
    finite = [bound for bound in bounds if bound != math.inf]
    top = finite[-1] if finite else 0.0
    mean = lower = below = 0.0
    for bound, fraction in zip(bounds, fractions, strict=True):
        middle = top if bound == math.inf else (lower + bound) / 2
        mean += (fraction - below) * middle
        lower, below = bound, fraction
    return mean


def _write_constant(out: TextIO, prefix: str, grid: range) -> int:
    """Write one ``prefix`` + timestamp line per millisecond instant of ``grid``."""
    if grid.start % 1000 == 0 and grid.step % 1000 == 0:
        # Whole seconds, the common case: plain integers, formatted fast.
        seconds = range(grid.start // 1000, -(-grid.stop // 1000), grid.step // 1000)
        out.writelines(f"{prefix}{ts}\n" for ts in seconds)
    else:
        out.writelines(f"{prefix}{_timestamp(at)}\n" for at in grid)
    return len(grid)


def _grid(first_ms: int, stop_ms: int, step_ms: int) -> range:
    """The instants ``first_ms + k * step_ms`` below ``stop_ms``."""
    return range(first_ms, stop_ms, step_ms)


def _timestamp(at_ms: int) -> str:
    """OpenMetrics timestamps are seconds; repr of ms / 1000 is exact to the millisecond."""
    return str(at_ms // 1000) if at_ms % 1000 == 0 else repr(at_ms / 1000)


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _le(bound: float) -> str:
    # OpenMetrics' canonical form: "0.5", "1.0", "+Inf".
    return "+Inf" if bound == math.inf else repr(float(bound))


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def _escape(value: str) -> str:
    # OpenMetrics escapes exactly these three in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _cluster_of(pod: Pod) -> dict[str, str]:
    return {"cluster": pod.cluster} if pod.cluster else {}


def _node(pod: Pod) -> str:
    return pod.node or node_for_gpu_model(pod.gpu_model)


def _ms(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: synthetic usage needs timezone-aware times")
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _utc(at: datetime) -> datetime:
    _ms(at)  # the same check for naive datetimes
    return at.astimezone(UTC)
