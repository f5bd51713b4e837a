"""How much slower is ``manage.py pull_usage`` than simply asking Prometheus?

A month of synthetic GPU allocation (``--days`` 30 x ``--namespaces`` 200 x 3 GPU models:
600 pods running the whole time, 1 to 4 GPUs each, so every hour of every series has a
value: 432,000 ledger rows) is backfilled into a real Prometheus. In one process and the
same run the bench then times, ``--repeat`` times in alternating order:

raw
    The floor: the very HTTP requests that :func:`metering.collector.fetch` sends (the
    ``allocation`` source's query text, the same ``start``/``end``/``step``/``timeout`` per
    chunk of ``METERING_QUERY_HOURS``), issued with ``requests``, with ``response.json()``.
ours, empty ledger
    ``call_command("pull_usage", "--source", "allocation", "--start", …, "--end", …)``
    into an emptied ledger (``TRUNCATE`` on PostgreSQL).
ours, full ledger
    The same command again over the ledger it just wrote: the re-pull path (upsert, then
    the ``UPDATE`` that zeroes the rows the run did not write).

It prints the medians, the ratio ours / raw (the target is ≤ 1.3), ledger rows written per
second, the peak memory of each pass (the process' peak RSS, reset before each pass where
Linux allows, and in a separate untimed pass the ``tracemalloc`` peak of Python
allocations) and a break-down of our time (HTTP + JSON, turning values into Decimals, the
database write, the rest). To show that cost is linear in hours x series it runs the same
with a quarter of the days and with a quarter of the namespaces, and prints the time per
hour x series of each. With ``--profile`` (or when a ratio is over 1.3) one more pull runs
under cProfile and the bench says where the time goes.

Generating and backfilling the data takes about a minute (1.5 GB of OpenMetrics text,
deleted once backfilled); the TSDB blocks (6 MB) are cached under ``--workdir`` and reused
by later runs (``--rebuild`` makes them again). That time is printed but is no part of any
ratio. Samples are every ``--step-s`` 300 s, not the 15 to 30 s of a real scrape (a month at
30 s would be 15 GB of text); Prometheus runs with ``--query.lookback-delta`` just over the
step, so the query, which looks at every minute, sees the values it would see with a real
scrape, at the same cost. Only the series that the ``allocation`` source reads are written
(no DCGM series).

The ledger is a throwaway PostgreSQL database, ``bench_ingest`` on 127.0.0.1, created with
migrations and dropped at the end (``--keep-database`` keeps it). ``--database-url`` names
another one; a database that already exists is refused unless ``--reuse-database`` (the
bench empties its metering ledger and points the ``allocation`` source at its own
Prometheus, so never give it a database that matters). Run from the repository root::

    .venv/bin/python bench/ingest.py                    # everything: ~40 min on 2 cores
    .venv/bin/python bench/ingest.py --repeat 1 --no-sweep --no-memory   # ~5 min
    .venv/bin/python bench/ingest.py --json > ingest.json   # JSON instead of the table
    .venv/bin/python bench/ingest.py --json ingest.json     # the table, and JSON too

Options (``--help`` gives the defaults): ``--namespaces`` 200, ``--days`` 30, ``--step-s``
300 shape the data; ``--repeat`` 3 timed passes of each kind; ``--no-sweep`` skips the
quarter-size cases, ``--no-memory`` the tracemalloc pass, ``--profile`` profiles even when
the ratio is met; ``--workdir`` (``/tmp/bench-ingest``) and ``--rebuild`` for the cached
data; ``--database-url``, ``--reuse-database``, ``--keep-database`` for the ledger;
``--json [PATH]``.

It needs ``prometheus`` and ``promtool`` on PATH (or PROMETHEUS_BIN / PROMTOOL_BIN) and
runs with ``DEBUG=0`` unless the environment says otherwise. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from common import log, postgres_database
from common import setup_django as django_setup

from core import calendar

GPU_MODELS = ("NVIDIA-A100-SXM4-80GB", "Tesla-T4", "NVIDIA-L4")
# Two of the three models have a GPU class; NVIDIA-L4 stays *Unknown model*.
GPU_CLASSES = (("A100 80GB", "a100", r".*A100.*"), ("T4", "t4", r"Tesla-T4"))
DEPARTMENTS = 20
UNOWNED_EVERY = 8  # every 8th namespace has no department: *Unallocated*
TARGET_RATIO = 1.3
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_ingest"
DATASET_VERSION = 2  # bump when the generated data changes, so old caches are rebuilt
# The portal's GPU workers: a worker pool namespace with one pod per GPU model, and a
# portal-worker counter (the ``jobs`` source) per namespace and GPU class, growing by one
# GPU-second a second, as a worker running that namespace's jobs would count them.
POOL = "gpu-workers"
POOL_GPUS = 8
JOB_CLASSES = ("a100", "t4")


# --- data: generated once, cached as TSDB blocks ---------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """``namespaces`` x GPU models of pods, running over ``[start, end)`` and beyond."""

    namespaces: int
    days: int
    step_s: int
    start: dt.datetime
    end: dt.datetime
    directory: Path
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def series(self) -> int:
        """Series of the ``allocation`` source: every namespace's pods and the pool's."""
        return self.namespaces * len(GPU_MODELS) + len(GPU_MODELS)

    @property
    def job_series(self) -> int:
        """Series of the ``jobs`` source: a counter per namespace and GPU class."""
        return self.namespaces * len(JOB_CLASSES)

    @property
    def blocks(self) -> Path:
        return self.directory / "tsdb"

    @property
    def lookback_delta(self) -> str:
        return f"{self.step_s + 1}s"

    def gpu_hours_per_hour(self) -> int:
        return sum(
            gpus_of(index, model) for index in range(self.namespaces) for model in GPU_MODELS
        ) + POOL_GPUS * len(GPU_MODELS)


def namespace_name(index: int) -> str:
    return f"bench-ns-{index:03d}"


def gpus_of(index: int, model: str) -> int:
    return 1 + (index * len(GPU_MODELS) + GPU_MODELS.index(model)) % 4


def pods_of(namespaces: int, start: dt.datetime, end: dt.datetime) -> list:
    from demo.synthetic import Pod

    # A little before and after the window, so that its first and last hours are whole.
    return [
        Pod(
            namespace=namespace_name(index),
            name=f"worker-{model.lower()}",
            gpu_model=model,
            gpus=gpus_of(index, model),
            start=start - dt.timedelta(hours=2),
            end=end + dt.timedelta(hours=1),
        )
        for index in range(namespaces)
        for model in GPU_MODELS
    ] + [
        Pod(
            namespace=POOL,
            name=f"portal-worker-{model.lower()}",
            gpu_model=model,
            gpus=POOL_GPUS,
            start=start - dt.timedelta(hours=2),
            end=end + dt.timedelta(hours=1),
        )
        for model in GPU_MODELS
    ]


def counters_of(namespaces: int, start: dt.datetime, end: dt.datetime, step_s: int) -> Iterator:
    """The portal workers' counter, sampled every ``step_s``: each namespace's jobs keep a
    GPU of each class busy, 1 GPU-second a second."""
    from demo.synthetic import CounterSample

    first = start - dt.timedelta(hours=2)
    steps = int((end + dt.timedelta(hours=1) - first).total_seconds()) // step_s
    for index in range(namespaces):
        for gpu_class in JOB_CLASSES:
            for step in range(steps + 1):
                yield CounterSample(
                    namespace_name(index),
                    gpu_class,
                    "render",
                    first + dt.timedelta(seconds=step * step_s),
                    float(step * step_s),
                )


def dataset(workdir: Path, *, namespaces: int, days: int, step_s: int, rebuild: bool) -> Dataset:
    """The cached dataset of this shape, generated and backfilled when missing."""
    from demo import local_prometheus, synthetic

    directory = workdir / f"ns{namespaces}-days{days}-step{step_s}"
    meta_path = directory / "dataset.json"
    if not rebuild and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == DATASET_VERSION:
            log(f"reusing {directory} ({meta['samples']:,} samples)")
            return Dataset(
                namespaces,
                days,
                step_s,
                dt.datetime.fromisoformat(meta["start"]),
                dt.datetime.fromisoformat(meta["end"]),
                directory,
                meta,
            )
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    # Ends at midnight UTC two days ago: far enough back for backfilled blocks.
    end = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end -= dt.timedelta(days=2)
    start = end - dt.timedelta(days=days)
    text = directory / "usage.om"
    began = time.perf_counter()
    samples = synthetic.write_openmetrics(
        text,
        pods=pods_of(namespaces, start, end),
        counters=counters_of(namespaces, start, end, step_s),
        step_s=step_s,
        dcgm=False,
    )
    written = time.perf_counter()
    log(
        f"wrote {samples:,} samples ({text.stat().st_size / 1e9:.2f} GB) in "
        f"{written - began:.0f} s; backfilling"
    )
    local_prometheus.backfill(text, directory / "tsdb")
    backfilled = time.perf_counter()
    text.unlink()
    log(f"backfilled in {backfilled - written:.0f} s")
    meta = {
        "version": DATASET_VERSION,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "samples": samples,
        "generate_s": round(written - began, 1),
        "backfill_s": round(backfilled - written, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return Dataset(namespaces, days, step_s, start, end, directory, meta)


# --- the database ------------------------------------------------------------------------------


@contextlib.contextmanager
def database(url: str, *, reuse: bool, keep: bool) -> Iterator[str]:
    """A database for the ledger at ``url``: created (PostgreSQL) unless it exists and
    ``reuse`` allows that, dropped at the end unless ``keep`` or it was reused."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        path = Path(parts.path[1:] if parts.path.startswith("//") else parts.path)
        if path.exists() and not reuse:
            raise SystemExit(f"{path} exists; remove it or pass --reuse-database.")
        created = not path.exists()
        try:
            yield url
        finally:
            if created and not keep:
                path.unlink(missing_ok=True)
        return
    with postgres_database(
        url, reuse=reuse, keep=keep, reused_means="its metering ledger", log=log
    ) as ready:
        yield ready


def setup_django(database_url: str) -> dict[str, str]:
    """Set Django up on ``database_url``; returns the fingerprints of the measured code."""
    return django_setup(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "portal.settings"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-ingest-only"),
        },
        ["metering.collector", "metering.services", "metering.management.commands.pull_usage"],
    )


def prepare_ledger() -> None:
    """Migrate, and make the departments, namespaces and GPU classes the pull resolves."""
    from django.core.management import call_command

    from departments.models import Department, GpuClass, Namespace, WorkerPool

    call_command("migrate", verbosity=0)
    for name, slug, regex in GPU_CLASSES:
        GpuClass.objects.update_or_create(
            slug=slug, defaults={"name": name, "model_regex": regex, "capacity_gpus": 1000}
        )
    departments = [
        Department.objects.update_or_create(
            slug=f"bench-dept-{number:02d}",
            defaults={"name": f"Bench department {number:02d}", "cost_centre": f"CC{number:04d}"},
        )[0]
        for number in range(DEPARTMENTS)
    ]
    # Every name --namespaces may use, so each case resolves against the same owners.
    wanted = {
        namespace_name(index): departments[index % DEPARTMENTS]
        for index in range(1000)
        if index % UNOWNED_EVERY != UNOWNED_EVERY - 1
    }
    existing = set(Namespace.objects.filter(name__in=wanted).values_list("name", flat=True))
    Namespace.objects.bulk_create(
        Namespace(name=name, department=department)
        for name, department in wanted.items()
        if name not in existing
    )
    # The workers' namespace is a worker pool: pulled like any other, priced apart.
    WorkerPool.objects.get_or_create(namespace=POOL, cluster=None)


def bench_source(name: str, prometheus_url: str):
    """The built-in source ``name`` (allocation, jobs), reading the bench's Prometheus."""
    from metering.models import MetricSource

    source = MetricSource.objects.get(name=name)
    source.prometheus_url = prometheus_url
    source.enabled = True
    source.save(update_fields=["prometheus_url", "enabled", "updated_at"])
    return source


def empty_ledger(source) -> None:
    from django.db import connection

    from metering.models import MeteringRun, UsageRecord

    if connection.vendor == "postgresql":
        tables = f"{UsageRecord._meta.db_table}, {MeteringRun._meta.db_table}"
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables}")  # table names from the models, not input
    else:
        UsageRecord.objects.filter(source=source).delete()
        MeteringRun.objects.filter(source=source).delete()


# --- the passes ---------------------------------------------------------------------------------


@dataclass
class Pass:
    """One timed pull of the whole window."""

    kind: str  # raw | empty | full
    seconds: float
    rows: int
    peak_rss_mb: float | None
    start_rss_mb: float | None
    parts_s: dict[str, float] = field(default_factory=dict)


class PeakRss:
    """The process' peak resident memory over a ``with`` block: Linux's VmHWM, reset at the
    start through /proc/self/clear_refs; elsewhere ru_maxrss, the peak since the start."""

    def __enter__(self) -> PeakRss:
        self.mb: float | None = None
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        self.start_mb = self._status("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        self.mb = self._status("VmHWM")
        if self.mb is None:
            self.mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    @staticmethod
    def _status(name: str) -> float | None:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(f"{name}:"):
                    return int(line.split()[1]) / 1024
        return None


def raw_pull(source, start: dt.datetime, end: dt.datetime) -> int:
    """The requests :func:`metering.collector.fetch` sends, with nothing done to the answer
    but ``.json()``; returns the number of points (hour x series) read."""
    import requests
    from django.conf import settings

    from metering import collector

    query = source.query()
    url = f"{collector.base_url(source)}/api/v1/query_range"
    headers = {"Authorization": source.auth_header} if source.auth_header else None
    points = 0
    # pull_usage runs one usage_pull, hence one client, per chunk: so does this.
    for chunk_start, chunk_end in collector.query_windows(start, end):
        with requests.Session() as session:
            response = session.get(
                url,
                params={
                    "query": query,
                    "start": round((chunk_start + calendar.HOUR).timestamp()),
                    "end": round(chunk_end.timestamp()),
                    "step": "3600",
                    "timeout": f"{settings.METERING_QUERY_TIMEOUT_S}s",
                },
                headers=headers,
                timeout=(settings.METERING_CONNECT_TIMEOUT_S, settings.METERING_QUERY_TIMEOUT_S),
            )
            response.raise_for_status()
            result = response.json()["data"]["result"]
        points += sum(len(series["values"]) for series in result)
    return points


class Stopwatches:
    """Adds up the time spent inside a few functions of ours while a pull runs, by wrapping
    them (one wrapper call per chunk or per query: no measurable cost)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._patches: list[tuple[object, str, Callable]] = []

    def wrap(self, owner: object, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - began

        setattr(owner, attribute, timed)
        self._patches.append((owner, attribute, original))

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._patches):
            setattr(owner, attribute, original)
        self._patches.clear()


def ours_pull(source, start: dt.datetime, end: dt.datetime) -> tuple[int, dict[str, float]]:
    """``manage.py pull_usage`` for the window; returns rows written and time by part."""
    from django.core.management import call_command
    from prometheus_api_client import PrometheusConnect

    from metering import collector, services
    from metering.models import MeteringRun

    watches = Stopwatches()
    watches.wrap(PrometheusConnect, "custom_query_range", "query")
    watches.wrap(collector, "fetch", "fetch")
    watches.wrap(services, "_write", "write")
    began = dt.datetime.now(dt.UTC)
    out = io.StringIO()
    try:
        call_command(
            "pull_usage",
            "--source",
            source.name,
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--no-progress",
            stdout=out,
            stderr=out,
        )
    finally:
        watches.restore()
    runs = MeteringRun.objects.filter(source=source, started_at__gte=began)
    if any(run.status != MeteringRun.Status.SUCCEEDED or run.warnings for run in runs):
        raise RuntimeError(f"pull_usage did not run cleanly:\n{out.getvalue()}")
    parts = watches.totals
    return sum(run.rows_written for run in runs), {
        "query_http_json": parts.get("query", 0.0),
        "collect_values": parts.get("fetch", 0.0) - parts.get("query", 0.0),
        "db_write": parts.get("write", 0.0),
    }


def check_ledger(source, ds: Dataset, start: dt.datetime, end: dt.datetime, rows: int) -> None:
    """The ledger holds what the data imply: for ``allocation`` every hour x series,
    ``gpus`` GPU-hours each, exactly (in GPU-seconds); for ``jobs`` every hour x counter,
    one GPU-hour each (``increase()`` of a steady counter, to the microsecond)."""
    from decimal import Decimal

    from django.db.models import Count, Max, Min, Sum

    from metering.models import UsageRecord

    hours = calendar.hour_count(start, end)
    got = UsageRecord.objects.filter(
        source=source, hour_start__gte=start, hour_start__lt=end
    ).aggregate(
        rows=Count("id"), seconds=Sum("quantity"), low=Min("quantity"), high=Max("quantity")
    )
    if source.name == "jobs":
        expected_rows = hours * ds.job_series
        expected = Decimal(expected_rows * 3600)
        close = abs(got["seconds"] - expected) <= expected_rows * Decimal("0.001") and (
            abs(got["low"] - 3600) <= 1 and abs(got["high"] - 3600) <= 1
        )
    else:
        expected_rows = hours * ds.series
        expected = Decimal(hours * ds.gpu_hours_per_hour() * 3600)
        close = got["seconds"] == expected
    if rows != expected_rows or got["rows"] != expected_rows or not close:
        raise RuntimeError(
            f"{source.name} ledger is wrong: {rows} rows written, {got['rows']} stored, "
            f"{got['seconds']} GPU-seconds; expected {expected_rows} rows, {expected}"
        )


@dataclass
class Case:
    """One shape of the sweep: its dataset and the window pulled from it."""

    label: str
    ds: Dataset
    start: dt.datetime
    end: dt.datetime
    source: str = "allocation"  # the metric source pulled: allocation or jobs
    passes: list[Pass] = field(default_factory=list)
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def hours(self) -> int:
        return int((self.end - self.start) / dt.timedelta(hours=1))

    @property
    def series(self) -> int:
        return self.ds.job_series if self.source == "jobs" else self.ds.series

    @property
    def cells(self) -> int:
        return self.hours * self.series

    def median(self, kind: str) -> float:
        return statistics.median(p.seconds for p in self.passes if p.kind == kind)

    def median_part(self, kind: str, part: str) -> float:
        return statistics.median(p.parts_s[part] for p in self.passes if p.kind == kind)

    def peak_rss(self, kind: str) -> float | None:
        peaks = [p.peak_rss_mb for p in self.passes if p.kind == kind and p.peak_rss_mb]
        return max(peaks) if peaks else None

    def start_rss(self) -> float | None:
        starts = [p.start_rss_mb for p in self.passes if p.start_rss_mb]
        return min(starts) if starts else None

    def summary(self) -> dict:
        raw = self.median("raw")
        result = {
            "label": self.label,
            "source": self.source,
            "namespaces": self.ds.namespaces,
            "series": self.series,
            "hours": self.hours,
            "hour_series": self.cells,
            "window": [self.start.isoformat(), self.end.isoformat()],
            "raw_s": raw,
            "raw_us_per_hour_series": raw / self.cells * 1e6,
            "raw_peak_rss_mb": self.peak_rss("raw"),
            "rss_before_passes_mb": self.start_rss(),
            "passes": [asdict(p) for p in self.passes],
            "tracemalloc_peak_mb": self.memory,
        }
        for kind in ("empty", "full"):
            seconds = self.median(kind)
            rows = statistics.median(p.rows for p in self.passes if p.kind == kind)
            # Ours minus the time of its own requests: what the portal adds, free of the
            # pass-to-pass swings of Prometheus.
            overhead = statistics.median(
                p.seconds - p.parts_s["query_http_json"] for p in self.passes if p.kind == kind
            )
            result[kind] = {
                "seconds": seconds,
                "ratio": seconds / raw,
                "rows": rows,
                "rows_per_s": rows / seconds,
                "us_per_hour_series": seconds / self.cells * 1e6,
                "overhead_s": overhead,
                "overhead_us_per_hour_series": overhead / self.cells * 1e6,
                "peak_rss_mb": self.peak_rss(kind),
                "parts_s": {
                    part: self.median_part(kind, part)
                    for part in ("query_http_json", "collect_values", "db_write")
                },
            }
        return result


def warm_up(source, start: dt.datetime, end: dt.datetime) -> None:
    """Read every sample of the window once (cheaply), so that no pass is the one that
    pulls the blocks into the page cache."""
    import requests

    from metering import collector

    hours = int((end - start) / dt.timedelta(hours=1)) + 3
    response = requests.get(
        f"{collector.base_url(source)}/api/v1/query",
        params={
            "query": f'count(count_over_time({{__name__=~"kube_.+"}}[{hours}h]))',
            "time": round(end.timestamp()),
        },
        timeout=600,
    )
    response.raise_for_status()


def run_case(case: Case, source, repeat: int) -> None:
    """Time raw, empty-ledger and full-ledger pulls ``repeat`` times, alternating whether
    raw goes first or last."""
    warm_up(source, case.start, case.end)
    for number in range(repeat):
        order = ["raw", "empty", "full"] if number % 2 == 0 else ["empty", "full", "raw"]
        for kind in order:
            if kind == "empty":
                empty_ledger(source)
            with PeakRss() as peak:
                began = time.perf_counter()
                if kind == "raw":
                    rows, parts = raw_pull(source, case.start, case.end), {}
                else:
                    rows, parts = ours_pull(source, case.start, case.end)
                seconds = time.perf_counter() - began
            if kind != "raw":
                check_ledger(source, case.ds, case.start, case.end, rows)
            case.passes.append(Pass(kind, seconds, rows, peak.mb, peak.start_mb, parts))
            log(f"{case.label} #{number + 1} {kind:5}: {seconds:7.2f} s, {rows:,} rows")


def measure_memory(case: Case, source) -> None:
    """An untimed raw and empty-ledger pull under tracemalloc: peak Python allocations."""
    tracemalloc.start()
    try:
        raw_pull(source, case.start, case.end)
        case.memory["raw"] = tracemalloc.get_traced_memory()[1] / 2**20
        empty_ledger(source)
        tracemalloc.reset_peak()
        ours_pull(source, case.start, case.end)
        case.memory["empty"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.reset_peak()
        ours_pull(source, case.start, case.end)
        case.memory["full"] = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# --- profile ------------------------------------------------------------------------------------


def profile_parts() -> list[tuple[str, Callable | str]]:
    """What to add up in a profile: (label, function), or (label, text in the name of a
    built-in); each is the cumulative time of that function. The write has two paths (the
    ORM's bulk_create, and plain tuples through psycopg2's execute_values on PostgreSQL):
    the one not taken shows 0."""
    import requests
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model, QuerySet
    from django.db.models.sql.compiler import SQLInsertCompiler
    from prometheus_api_client import PrometheusConnect

    from metering import collector, services

    return [
        ("HTTP request + response.json()", PrometheusConnect.custom_query_range),
        ("  of which response.json()", requests.models.Response.json),
        ("collector._collect (every point)", collector._collect),
        ("  collector._quantity (Decimal)", collector._quantity),
        ("  datetime.fromtimestamp", "fromtimestamp"),
        ("services._write", services._write),
        ("  GpuClassResolver", services.GpuClassResolver.__call__),
        ("  UsageRecord(...) instances", Model.__init__),
        ("  bulk_create upsert", QuerySet.bulk_create),
        ("    INSERT SQL + parameters", SQLInsertCompiler.as_sql),
        ("  execute_values (mogrify)", "'mogrify' of 'psycopg2"),
        ("  zeroing UPDATE", QuerySet.update),
        ("all cursor.execute (psycopg2 + server)", "'execute' of 'psycopg2"),
        ("transaction commit (deferred FK checks)", BaseDatabaseWrapper.commit),
    ]


def profile_pull(case: Case, source, path: Path) -> dict:
    """One empty-ledger pull under cProfile: cumulative time of the parts above, and the
    functions that take the most time themselves."""
    wanted = profile_parts()  # before ours_pull wraps some of them
    empty_ledger(source)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    ours_pull(source, case.start, case.end)
    profiler.disable()
    total = time.perf_counter() - began
    profiler.dump_stats(path)
    rows = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {}
    for label, target in wanted:
        if isinstance(target, str):
            keys = [key for key in rows if key[0] == "~" and target in key[2]]
        else:
            code = target.__code__
            keys = [(code.co_filename, code.co_firstlineno, code.co_name)]
        parts[label] = sum(rows[key][3] for key in keys if key in rows)
    top = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:15]
    return {
        "total_s": total,
        "parts_s": parts,
        "top_self_s": [
            {
                "function": f"{Path(filename).name}:{line} {function}",
                "self_s": row[2],
                "calls": row[1],
            }
            for (filename, line, function), row in top
        ],
        "pstats_file": str(path),
    }


# --- report -------------------------------------------------------------------------------------


def report(results: dict) -> str:
    lines = []
    full = results["cases"][0]
    lines.append(
        f"pull_usage --source allocation, {full['namespaces']} namespaces x "
        f"{len(GPU_MODELS)} GPU models and the worker pool's {len(GPU_MODELS)} pods = "
        f"{full['series']} series, {full['hours']} hours ({full['hour_series']:,} ledger "
        f"rows); --source jobs, a worker counter per namespace and {len(JOB_CLASSES)} GPU "
        f"classes; median of {results['repeat']}; database {results['database']}; "
        f"Prometheus {results['prometheus_version']}"
    )
    lines.append(
        "code measured (sha256): "
        + ", ".join(f"{path} {digest}" for path, digest in results["code_sha256"].items())
    )
    lines.append("")
    header = (
        f"{'case':<20}{'hourxseries':>12}{'raw s':>9}{'ours s':>9}{'ratio':>7}"
        f"{'rows/s':>10}{'raw µs/hs':>11}{'ours µs/hs':>12}{'added µs/hs':>13}"
        f"{'peak RSS MB':>13}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for case in results["cases"]:
        for kind in ("empty", "full"):
            ours = case[kind]
            lines.append(
                f"{case['label'] + ', ' + kind:<20}{case['hour_series']:>12,}"
                f"{case['raw_s']:>9.2f}{ours['seconds']:>9.2f}{ours['ratio']:>7.2f}"
                f"{ours['rows_per_s']:>10,.0f}{case['raw_us_per_hour_series']:>11.2f}"
                f"{ours['us_per_hour_series']:>12.2f}"
                f"{ours['overhead_us_per_hour_series']:>13.2f}"
                f"{(ours['peak_rss_mb'] or 0):>13.0f}"
            )
    lines.append(
        "µs/hs: microseconds per hour x series; 'added' is ours minus the time of its own "
        "Prometheus requests: the same in every case means our cost is linear in hours x series."
    )
    lines.append("")
    lines.append("where our time goes (median seconds, case 'month'):")
    for kind in ("empty", "full"):
        parts = full[kind]["parts_s"]
        rest = full[kind]["seconds"] - sum(parts.values())
        lines.append(
            f"  {kind:5} ledger: HTTP + JSON {parts['query_http_json']:.2f}, values to "
            f"Decimal {parts['collect_values']:.2f}, database write {parts['db_write']:.2f}, "
            f"rest (runs, lock, commit, command) {rest:.2f}; the write alone "
            f"{full[kind]['rows'] / parts['db_write']:,.0f} rows/s"
        )
    lines.append(
        f"peak RSS of the process, month: raw {full['raw_peak_rss_mb'] or 0:.0f} MB, "
        f"ours empty {full['empty']['peak_rss_mb'] or 0:.0f} MB, full "
        f"{full['full']['peak_rss_mb'] or 0:.0f} MB ({full['rss_before_passes_mb'] or 0:.0f} MB "
        "before a pass: Python, Django, connections)"
    )
    memory = full["tracemalloc_peak_mb"]
    if memory:
        lines.append(
            f"peak Python allocations (tracemalloc, untimed pass): raw {memory['raw']:.0f} MB, "
            f"ours empty {memory['empty']:.0f} MB, ours full {memory['full']:.0f} MB"
        )
    built = ", ".join(
        f"{name}: generate {ds['generate_s']:.0f} s + backfill {ds['backfill_s']:.0f} s"
        for name, ds in results["datasets"].items()
    )
    lines.append(
        f"setup, in no ratio: data {results['setup_s']['data']:.0f} s this run (when built: "
        f"{built}), Prometheus start {results['setup_s']['prometheus']:.1f} s"
    )
    ratios = [full[kind]["ratio"] for kind in ("empty", "full")]
    shown = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    jobs = next((case for case in results["cases"] if case["source"] == "jobs"), None)
    both = []
    if jobs is not None:
        # What the portal pulls for the month: every enabled source, allocation and jobs.
        both = [
            (full[kind]["seconds"] + jobs[kind]["seconds"]) / (full["raw_s"] + jobs["raw_s"])
            for kind in ("empty", "full")
        ]
        shown += "; both sources together " + ", ".join(f"{ratio:.2f}" for ratio in both)
    verdict = "met" if max(ratios + both) <= TARGET_RATIO else "NOT met"
    lines.append(
        f"target ratio ours / raw <= {TARGET_RATIO}, the allocation pull (what bills, with "
        f"the worker pool's series) and the month of both sources: {verdict} ({shown})"
    )
    if jobs is not None:
        lines.append(
            f"the jobs source alone (a cross-check; billing reads the jobs' own rows): ratio "
            f"{jobs['empty']['ratio']:.2f}, {jobs['full']['ratio']:.2f}: its query costs "
            f"Prometheus {jobs['raw_us_per_hour_series']:.1f} µs per hour x series against "
            f"allocation's {full['raw_us_per_hour_series']:.0f}, so that ratio is our own "
            f"cost ({jobs['empty']['overhead_us_per_hour_series']:.0f} µs per row, as for "
            f"allocation's {full['empty']['overhead_us_per_hour_series']:.0f}) over almost "
            "nothing"
        )
    if results.get("profile"):
        profile = results["profile"]
        lines.append("")
        lines.append(
            f"cProfile of one empty-ledger pull ({profile['total_s']:.1f} s under the "
            f"profiler; {profile['pstats_file']}):"
        )
        for label, seconds in profile["parts_s"].items():
            lines.append(f"  {label:<40}{seconds:>8.2f} s")
        lines.append("  most time in the function itself:")
        for row in profile["top_self_s"]:
            lines.append(f"    {row['self_s']:>7.2f} s {row['calls']:>10,} x {row['function']}")
    return "\n".join(lines)


def prometheus_version(url: str) -> str:
    import requests

    with contextlib.suppress(requests.RequestException, KeyError, ValueError):
        return requests.get(f"{url}/api/v1/status/buildinfo", timeout=5).json()["data"]["version"]
    return "unknown"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time pull_usage over a month of synthetic usage against the raw "
        "Prometheus requests it makes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--days", type=int, default=30, help="days of history pulled")
    parser.add_argument("--step-s", type=int, default=300, help="seconds between samples")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each kind")
    parser.add_argument(
        "--no-sweep", action="store_true", help="skip the 1/4 days and 1/4 namespaces cases"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-ingest"
    )
    parser.add_argument("--rebuild", action="store_true", help="make the cached data again")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--reuse-database", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"profile one pull even when the ratio is within {TARGET_RATIO}",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="results as JSON: on stdout instead of the table, or into PATH as well",
    )
    args = parser.parse_args(argv)
    if args.namespaces < 4 or args.days < 4 or args.repeat < 1:
        parser.error("--namespaces and --days must be at least 4, --repeat at least 1")
    if args.namespaces > 1000:
        parser.error("--namespaces is at most 1000 (bench-ns-000 to bench-ns-999)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with database(args.database_url, reuse=args.reuse_database, keep=args.keep_database) as url:
        code = setup_django(url)
        return run(args, url, code)


def run(args: argparse.Namespace, url: str, code: dict[str, str]) -> int:
    from django.conf import settings

    from demo import local_prometheus

    if settings.DEBUG:
        log("warning: DEBUG is on, so Django keeps every query in memory; set DEBUG=0")
    prepare_ledger()
    began = time.perf_counter()
    month = dataset(
        args.workdir,
        namespaces=args.namespaces,
        days=args.days,
        step_s=args.step_s,
        rebuild=args.rebuild,
    )
    cases = [
        Case("month", month, month.start, month.end),
        Case("jobs, month", month, month.start, month.end, source="jobs"),
    ]
    if not args.no_sweep:
        quarter_days = month.start + (month.end - month.start) / 4
        cases.append(Case("days/4", month, month.start, quarter_days))
        quarter_ns = dataset(
            args.workdir,
            namespaces=args.namespaces // 4,
            days=args.days,
            step_s=args.step_s,
            rebuild=args.rebuild,
        )
        cases.append(Case("ns/4", quarter_ns, quarter_ns.start, quarter_ns.end))
    setup = {"data": time.perf_counter() - began, "prometheus": 0.0}
    results: dict = {
        "repeat": args.repeat,
        "database": urlsplit(url).scheme + ":" + urlsplit(url).path.lstrip("/"),
        "debug": settings.DEBUG,
        "query_hours": settings.METERING_QUERY_HOURS,
        "step_s": args.step_s,
        "target_ratio": TARGET_RATIO,
        "code_sha256": code,
        "cases": [],
    }
    # The month's own data last, and the untimed passes (tracemalloc, cProfile) after every
    # timed one, so that what they leave in the process is in no timed pass's peak RSS.
    for ds in sorted(dict.fromkeys(case.ds for case in cases), key=lambda ds: ds == month):
        started = time.perf_counter()
        with local_prometheus.running(ds.blocks, lookback_delta=ds.lookback_delta) as server:
            setup["prometheus"] += time.perf_counter() - started
            results["prometheus_version"] = prometheus_version(server.url)
            for case in reversed(cases):
                if case.ds == ds:
                    source = bench_source(case.source, server.url)
                    log(f"case {case.label}: {case.series} series x {case.hours} h")
                    run_case(case, source, args.repeat)
                    empty_ledger(source)
            source = bench_source("allocation", server.url)
            if ds == month:
                if not args.no_memory:
                    measure_memory(cases[0], source)
                summary = cases[0].summary()
                worst = max(summary[kind]["ratio"] for kind in ("empty", "full"))
                if args.profile or worst > TARGET_RATIO:
                    results["profile"] = profile_pull(
                        cases[0], source, args.workdir / "pull_usage.pstats"
                    )
            empty_ledger(source)
    results["setup_s"] = setup
    results["datasets"] = {ds.directory.name: ds.meta for ds in dict.fromkeys(c.ds for c in cases)}
    results["cases"] = [case.summary() for case in cases]
    text = json.dumps(results, indent=2, default=str)
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
    print(text if args.json == "-" else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
