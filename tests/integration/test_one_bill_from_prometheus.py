"""One bill for every GPU-hour, from a real Prometheus.

Promtool backfills a day of kube-state-metrics, DCGM exporter and portal-worker counter
series of two clusters gathered in one Prometheus (as a Thanos or Mimir would, with a
``cluster`` label): a worker pool per GPU class running jobs of three departments,
namespace workloads, a MIG-partitioned A100, a time-sliced T4, an unowned namespace, an
unknown model, a namespace of the same name in both clusters, a worker that dies mid-job
and comes back, jobs that cross hour boundaries, a worker pod Prometheus did not see for
an hour, and kube-state-metrics scraped every 30 s on a grid that lags the pods' edges.

The portal pulls the ledger (a billing source per cluster), the worker runs its jobs
through its real steps on the test's clock, and the month is priced. The test computes
the truth from its own pod and job lists: every department's GPU time per class and hour
is within one GPU-minute per GPU of each pod edge in that hour (jobs are exact), each
pool-hour's idle likewise, the hour the pool was not seen is flagged, and the month
reconciles to the cent.
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings

from billing import selectors, services
from billing.models import LineKind, Statement, StatementLine, WorkerPoolHour
from core import calendar
from demo import local_prometheus, synthetic
from departments import services as department_services
from departments.models import GpuClass
from jobs import services as job_services
from jobs.models import GenerationJob, JobGpuTime
from metering import services as metering_services
from metering.models import MeteringRun, MetricSource, UsageRecord
from tests import factories
from tests.conftest import builtin_sources_install, require_prometheus

pytestmark = pytest.mark.integration

SCRAPE_S = 30
HEARTBEAT = dt.timedelta(seconds=30)
A100, T4, T4_SHARED, MI300 = (
    "NVIDIA-A100-SXM4-80GB",
    "Tesla-T4",
    "Tesla-T4-SHARED",
    "AMD-Instinct-MI300X",
)
POOL = "gpu-workers"
EU, US = "prod-eu", "prod-us"
MINUTE = 60


@dataclass(frozen=True)
class Attempt:
    """A job attempt as the worker ran it: billed from ``start`` to ``billed_until`` (its
    end, or its last heartbeat when its worker died)."""

    department: str
    gpu_class: str
    tier: str
    kind: str
    gpus: int
    start: dt.datetime
    end: dt.datetime
    dies: bool = False  # its worker dies at ``end``: billed to its last heartbeat
    retry_of: int | None = None  # index of the attempt it retries (same job)

    @property
    def billed_until(self) -> dt.datetime:
        if not self.dies:
            return self.end
        # Its last heartbeat before the end (a beat on the very instant it died is none).
        beats = (self.end - self.start - dt.timedelta(microseconds=1)) // HEARTBEAT
        return self.start + beats * HEARTBEAT


def _scenario(day: dt.datetime):
    def at(h: float, m: float = 0, s: float = 0) -> dt.datetime:
        return day + dt.timedelta(hours=h, minutes=m, seconds=s)

    def pod(cluster, namespace, name, model, gpus, start, end, node, phase, mig=""):
        return synthetic.Pod(
            namespace, name, model, gpus, start, end, node, 50.0, phase, mig, cluster
        )

    pods = [
        # prod-eu: the virtual agent (realtime) the whole day; marketing's "ml" workload;
        # the worker pool: an A100 worker all day, a T4 worker that dies at 12:00, comes
        # back at 12:05, is not seen by Prometheus from 14:00 to 15:00.
        pod(EU, "cs-agent", "agent", A100, 1, at(0), at(24), "eu-a100-1", 7.3),
        pod(EU, "ml", "render-batch", A100, 2, at(3, 20), at(5, 40), "eu-a100-2", 7.3),
        pod(EU, POOL, "worker-a100", A100, 1, at(0), at(24), "eu-a100-3", 7.3),
        pod(EU, POOL, "worker-t4", T4, 2, at(0), at(12), "eu-t4-1", 7.3),
        pod(EU, POOL, "worker-t4-b", T4, 2, at(12, 5), at(14), "eu-t4-1", 7.3),
        pod(EU, POOL, "worker-t4-c", T4, 2, at(15), at(24), "eu-t4-1", 7.3),
        # prod-us: training's "ml" (the same name as marketing's in prod-eu), an unknown
        # model; MIG instances of customer service; time-sliced T4 notebooks nobody owns.
        pod(US, "ml", "assistant-train", A100, 4, at(1), at(9, 30), "us-a100-1", 23.9),
        pod(US, "ml", "assistant-eval", MI300, 1, at(10), at(11), "us-mi300-1", 23.9),
        pod(US, "cs-asr", "asr", A100, 3, at(2, 15), at(20, 45), "us-a100-mig", 23.9, "1g.10gb"),
        pod(US, "team-research", "notebook", T4_SHARED, 2, at(9), at(17, 30), "us-t4-1", 23.9),
    ]
    attempts = [
        Attempt("marketing", "a100", "interactive", "lipsync-render", 1, at(1, 30), at(2, 45)),
        Attempt("training", "a100", "batch", "lesson", 1, at(3, 10), at(3, 40)),
        Attempt("customer-service", "a100", "interactive", "voice", 1, at(5, 50), at(6, 20)),
        # The T4 worker dies at 12:00 mid-render; the render runs again on its new pod.
        Attempt("marketing", "t4", "batch", "lipsync-render", 1, at(10, 40), at(12), dies=True),
        Attempt("marketing", "t4", "batch", "lipsync-render", 1, at(11), at(11, 30)),
        Attempt("marketing", "t4", "batch", "lipsync-render", 1, at(12, 6), at(12, 50), retry_of=3),
        # Run while Prometheus did not see the worker's pod: the hour is flagged.
        Attempt("training", "t4", "batch", "lesson", 1, at(14, 10), at(14, 50)),
        Attempt("customer-service", "t4", "interactive", "voice", 2, at(22, 30), at(23, 59, 30)),
    ]
    return pods, attempts


# --- The portal's side --------------------------------------------------------------------


def _setup_portal(url: str):
    builtin_sources_install()
    eu = factories.ClusterFactory(slug=EU, name="Prod EU")
    us = factories.ClusterFactory(slug=US, name="Prod US")
    shipped = MetricSource.objects.get(name="allocation")
    MetricSource.objects.filter(is_billing=True).update(is_billing=False)
    sources = {}
    for cluster in (eu, us):
        source = MetricSource.objects.create(
            name=f"allocation-{cluster.slug}",
            query_template=shipped.query_template,
            namespace_label="namespace",
            model_label="gpu_model",
            label_filters={"cluster": cluster.slug},
            prometheus_url=url,
            cluster=cluster,
            is_billing=True,
        )
        sources[cluster.slug] = source
    device = MetricSource.objects.get(name="device")
    jobs_source = MetricSource.objects.get(name="jobs")
    MetricSource.objects.filter(pk__in=[device.pk, jobs_source.pk]).update(prometheus_url=url)

    a100 = factories.GpuClassFactory(
        slug="a100", name="A100", model_regex=".*A100.*", capacity_gpus=6
    )
    mig = factories.GpuClassFactory(
        slug="a100-1g", name="A100 1g.10gb", model_regex=".*A100.*", capacity_gpus=0,
        physical_class=a100, fraction_numerator=1, fraction_denominator=7, mig_profile="1g.10gb",
    )  # fmt: skip
    t4 = factories.GpuClassFactory(slug="t4", name="T4", model_regex="Tesla-T4", capacity_gpus=4)
    shared = factories.GpuClassFactory(
        slug="t4-shared", name="T4 shared by 4", model_regex="Tesla-T4-SHARED", capacity_gpus=0,
        physical_class=t4, fraction_numerator=1, fraction_denominator=4,
    )  # fmt: skip
    for gpu_class, price in ((a100, "3.20"), (mig, "0.55"), (t4, "0.55"), (shared, "0.15")):
        factories.RateCardFactory(gpu_class=gpu_class, price_per_gpu_hour=Decimal(price))
    factories.RateCardFactory(gpu_class=a100, tier="realtime", price_per_gpu_hour=Decimal("4.00"))

    departments = {
        slug: factories.DepartmentFactory(slug=slug, name=slug.replace("-", " ").title())
        for slug in ("marketing", "training", "customer-service")
    }
    claims = {
        "marketing": ["dept-marketing", f"{EU}/ml"],
        "training": ["dept-training", f"{US}/ml"],
        "customer-service": ["dept-customer-service", f"{EU}/cs-agent", f"{US}/cs-asr"],
    }
    for slug, namespaces in claims.items():
        department_services.department_set_namespaces(
            department=departments[slug], namespaces=namespaces
        )
    departments["customer-service"].namespaces.filter(name="cs-agent").update(tier="realtime")
    factories.WorkerPoolFactory(namespace=POOL, cluster=eu)
    return sources, departments


@override_settings(JOBS_WORKER_NAMESPACE=POOL, JOBS_WORKER_CLUSTER=EU, JOBS_HEARTBEAT_STALE_S=60)
def _run_jobs(attempts: list[Attempt], departments: dict) -> None:
    """Each attempt through the worker's real steps on the test's clock, in the pool of
    prod-eu; a worker that dies stops beating, the sweep queues its job again."""
    kinds = {}
    jobs: dict[int, GenerationJob] = {}
    for index, attempt in enumerate(attempts):
        kind = kinds.get(attempt.kind) or factories.JobKindFactory(
            slug=attempt.kind, name=attempt.kind.replace("-", " ").capitalize()
        )
        kinds[attempt.kind] = kind
        if attempt.retry_of is None:
            job = factories.GenerationJobFactory(
                department=departments[attempt.department],
                namespace=f"dept-{attempt.department}",
                kind=kind,
                gpu_class=GpuClass.objects.get(slug=attempt.gpu_class),
                tier=attempt.tier,
                gpus=attempt.gpus,
                state="queued",
            )
        else:
            job = jobs[attempt.retry_of]
        jobs[index] = job
        started = job_services.job_start(job_id=job.pk, worker=f"w{index}", now=attempt.start)
        assert started is not None, attempt
        number = started.attempts
        beat = attempt.start + HEARTBEAT
        while beat <= attempt.billed_until and beat < attempt.end:
            job_services.job_heartbeat(job_id=job.pk, worker=f"w{index}", attempt=number, now=beat)
            beat += HEARTBEAT
        if attempt.dies:
            GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=attempt.billed_until)
            counts = job_services.jobs_sweep(now=attempt.billed_until + dt.timedelta(minutes=2))
            assert counts["requeued"] == 1
        else:
            assert job_services.job_finish(
                job_id=job.pk,
                worker=f"w{index}",
                attempt=number,
                state="succeeded",
                now=attempt.end,
            )


def _counters(attempts: list[Attempt], day: dt.datetime) -> list:
    """What the workers' ``portal_job_gpu_seconds_total`` said every 15 s: it grows at
    each heartbeat and at each end by the time recorded; the T4 worker's process restarts
    at 12:05 (its counter starts again from 0)."""
    increments = []  # (when, series key, seconds)
    for attempt in attempts:
        key = (f"dept-{attempt.department}", attempt.gpu_class, attempt.kind)
        beat, last = attempt.start + HEARTBEAT, attempt.start
        while beat < attempt.end and beat <= attempt.billed_until:
            increments.append((beat, key, (beat - last).total_seconds() * attempt.gpus))
            last, beat = beat, beat + HEARTBEAT
        if not attempt.dies:
            increments.append(
                (attempt.end, key, (attempt.end - last).total_seconds() * attempt.gpus)
            )
    restart = day + dt.timedelta(hours=12, minutes=5)
    samples = []
    keys = {key for _, key, _ in increments}
    for key in sorted(keys):
        t4 = key[1] == "t4"
        value, at = 0.0, day
        while at <= day + dt.timedelta(hours=24):
            if t4 and day + dt.timedelta(hours=12) <= at < restart:
                at += dt.timedelta(seconds=15)  # the dead worker is not scraped
                continue
            since = restart if t4 and at >= restart else day
            value = sum(s for when, k, s in increments if k == key and since <= when <= at)
            samples.append(synthetic.CounterSample(*key, at, value, cluster=EU))
            at += dt.timedelta(seconds=15)
    return samples


# --- The truth, from the test's own lists -----------------------------------------------------


def _hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _spread(start: dt.datetime, end: dt.datetime, gpus: int, into: dict, key) -> None:
    hour = _hour(start)
    while hour < end:
        inside = min(end, hour + dt.timedelta(hours=1)) - max(start, hour)
        if inside > dt.timedelta(0):
            into[(*key, hour)] += Decimal(gpus) * Decimal(inside.total_seconds())
        hour += dt.timedelta(hours=1)


def _edges(pods, into: dict, key_of) -> None:
    """One GPU-minute per GPU of each pod start and end, in the hour it falls in."""
    for pod in pods:
        key = key_of(pod)
        if key is None:
            continue
        for hour in (_hour(pod.start), _hour(pod.end - dt.timedelta(microseconds=1))):
            into[(*key, hour)] += MINUTE * pod.gpus


OWNERS = {
    (EU, "ml"): "marketing",
    (US, "ml"): "training",
    (EU, "cs-agent"): "customer-service",
    (US, "cs-asr"): "customer-service",
}
CLASS_OF = {A100: "a100", T4: "t4", T4_SHARED: "t4-shared"}


def _pod_class(pod) -> str | None:
    return "a100-1g" if pod.mig_profile else CLASS_OF.get(pod.gpu_model)


def _truth(pods, attempts):
    billed = defaultdict(Decimal)  # (department, class, hour) -> GPU-seconds
    allowance = defaultdict(Decimal)
    pool_allocation = defaultdict(Decimal)  # (class, hour)
    pool_allowance = defaultdict(Decimal)
    pool_jobs = defaultdict(Decimal)
    for pod in pods:
        if _pod_class(pod) is None:
            continue  # an unknown model: kept unpriced, in no class
        if pod.namespace == POOL:
            _spread(pod.start, pod.end, pod.gpus, pool_allocation, (_pod_class(pod),))
        elif (owner := OWNERS.get((pod.cluster, pod.namespace))) is not None:
            _spread(pod.start, pod.end, pod.gpus, billed, (owner, _pod_class(pod)))

    def workload_key(pod):
        owner = OWNERS.get((pod.cluster, pod.namespace))
        known = _pod_class(pod) is not None
        return (owner, _pod_class(pod)) if owner and known and pod.namespace != POOL else None

    _edges(pods, allowance, workload_key)
    _edges(pods, pool_allowance, lambda p: (_pod_class(p),) if p.namespace == POOL else None)
    for attempt in attempts:
        _spread(
            attempt.start,
            attempt.billed_until,
            attempt.gpus,
            billed,
            (attempt.department, attempt.gpu_class),
        )
        _spread(attempt.start, attempt.billed_until, attempt.gpus, pool_jobs, (attempt.gpu_class,))
    return billed, allowance, pool_allocation, pool_allowance, pool_jobs


# --- The test --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def day():
    return dt.datetime.now(dt.UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - dt.timedelta(days=2)


@pytest.fixture(scope="module")
def two_clusters_in_prometheus(tmp_path_factory, day):
    require_prometheus()
    pods, attempts = _scenario(day)
    root = tmp_path_factory.mktemp("one-bill")
    synthetic.write_openmetrics(
        root / "history.om", pods=pods, counters=_counters(attempts, day), step_s=SCRAPE_S
    )
    local_prometheus.backfill(root / "history.om", root / "data")
    with local_prometheus.running(
        root / "data", lookback_delta=f"{SCRAPE_S + 1}s", log_path=root / "prometheus.log"
    ) as server:
        yield server.url, pods, attempts


@pytest.fixture(scope="module")
def _billed_once(django_db_setup, django_db_blocker, day, two_clusters_in_prometheus):
    """The pull, the jobs and the pricing, once for the module, in a transaction rolled
    back at its end (each test's own changes are rolled back after it, as usual)."""
    url, pods, attempts = two_clusters_in_prometheus
    with django_db_blocker.unblock(), override_settings(PROMETHEUS_URL=url):
        outer = transaction.atomic()
        outer.__enter__()
        try:
            sources, departments = _setup_portal(url)
            for source in sources.values():
                run = metering_services.usage_pull(
                    source=source, start=day, end=day + dt.timedelta(days=1)
                )
                assert run.status == MeteringRun.Status.SUCCEEDED, run.error
                assert run.warnings == []
            _run_jobs(attempts, departments)
            months = sorted(
                {calendar.month_of(day), calendar.month_of(day + dt.timedelta(hours=23))}
            )
            periods = [services.period_refresh(month=month, force=True) for month in months]
            yield pods, attempts, departments, periods
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def billed(_billed_once, db):
    return _billed_once


def test_every_department_hour_is_within_a_gpu_minute_per_gpu_of_each_edge(billed, day):
    pods, attempts, departments, _ = billed
    truth, allowance, *_ = _truth(pods, attempts)
    slugs = {d.pk: slug for slug, d in departments.items()}
    classes = dict(GpuClass.objects.values_list("pk", "slug"))
    measured = {
        (slugs.get(department), classes.get(gpu_class), hour): seconds
        for (department, gpu_class, hour), seconds in selectors.billed_gpu_seconds(
            start=day, end=day + dt.timedelta(days=1)
        ).items()
        if department is not None and gpu_class is not None
    }
    assert set(measured) == set(truth)
    exact = 0
    for key, seconds in sorted(truth.items()):
        error = measured[key] - seconds
        assert abs(error) <= allowance[key], (key, error, allowance[key])
        exact += allowance[key] == 0 and error == 0
    assert exact > 30  # the hours no edge falls in are exact, not merely close


def test_each_pool_hour_is_jobs_plus_idle_and_the_unseen_hour_is_flagged(billed, day):
    pods, attempts, _, periods = billed
    _, _, allocation, allowance, jobs = _truth(pods, attempts)
    rows = {
        (row.gpu_class.slug, row.hour_start): row
        for row in WorkerPoolHour.objects.filter(period__in=periods).select_related("gpu_class")
    }
    for (gpu_class, hour), seconds in allocation.items():
        row = rows[(gpu_class, hour)]
        assert row.namespace == POOL and row.cluster.slug == EU
        assert abs(row.allocation_seconds - seconds) <= allowance[(gpu_class, hour)], hour
        assert row.jobs_seconds == jobs.get((gpu_class, hour), 0), hour  # exact
        assert row.allocation_seconds == row.jobs_seconds + row.idle_seconds - row.excess_seconds
        truth_idle = max(Decimal(0), seconds - jobs.get((gpu_class, hour), 0))
        assert abs(row.idle_seconds - truth_idle) <= allowance[(gpu_class, hour)], hour
    flagged = [key for key, row in rows.items() if row.flagged]
    assert flagged == [("t4", day + dt.timedelta(hours=14))]
    unseen = rows[("t4", day + dt.timedelta(hours=14))]
    assert (unseen.allocation_seconds, unseen.jobs_seconds) == (0, 40 * MINUTE)


def test_the_bill_says_what_each_line_is_and_every_month_reconciles(billed):
    _, _, departments, periods = billed
    for period in periods:
        figures = selectors.reconciliation(period=period)
        assert figures.difference == 0, figures
        assert figures.pool_idle == period.pool_idle_amount > 0
    lines = StatementLine.objects.filter(period__in=periods)
    descriptions = " | ".join(lines.values_list("description", flat=True))
    # The MIG instances at their own card, in their cluster; the virtual agent realtime.
    assert (
        "GPU-hours of A100 1g.10gb in prod-us × 0.55 EUR, namespace workloads: prod-us/cs-asr"
        in descriptions
    )
    assert (
        "of A100 (realtime) in prod-eu × 4.00 EUR, namespace workloads: prod-eu/cs-agent"
        in descriptions
    )
    # The same namespace name in both clusters: two departments.
    ml = {
        (line.department.slug, line.cluster.slug)
        for line in lines.filter(kind=LineKind.USAGE, description__contains="/ml")
    }
    assert ml == {("marketing", EU), ("training", US)}
    # Portal jobs on their departments' statements, with the jobs behind each line.
    render = lines.get(
        kind=LineKind.JOBS, department=departments["marketing"], gpu_class__slug="t4"
    )
    assert render.description.endswith("portal jobs: Lipsync render × 2"), render.description
    assert render.jobs.count() == render.jobs_count == 2  # the retried render and the other
    # Nobody owns the time-sliced notebooks; the MI300 is kept unpriced on training's.
    (notebook,) = lines.filter(kind=LineKind.UNALLOCATED)
    assert (notebook.namespace, notebook.cluster.slug, notebook.gpu_class.slug) == (
        "team-research",
        US,
        "t4-shared",
    )
    unknown = lines.get(kind=LineKind.USAGE, gpu_class__isnull=True)
    assert (unknown.department, unknown.amount) == (departments["training"], 0)
    for statement in Statement.objects.filter(period__in=periods):
        assert statement.total == sum(line.amount for line in statement.lines.all())


def test_a_cut_short_attempt_is_billed_once_to_its_last_heartbeat(billed, day):
    _, attempts, _, _ = billed
    died = attempts[3]
    job = GenerationJob.objects.get(gpu_time__attempt=2)
    rows = dict(
        JobGpuTime.objects.filter(job=job, attempt=1).values_list("hour_start", "gpu_seconds")
    )
    assert sum(rows.values()) == Decimal((died.billed_until - died.start).total_seconds())
    assert job.gpu_seconds == sum(
        JobGpuTime.objects.filter(job=job).values_list("gpu_seconds", flat=True)
    )


def test_the_workers_counter_and_the_dcgm_exporter_agree_with_the_bill(billed, day):
    """Cross-checks: the ``jobs`` source (the workers' counter, which grows at every
    heartbeat and survives the restart) agrees with the jobs' recorded time per department
    namespace and hour, and the ``device`` source (DCGM, MIG instances by GPU_I_PROFILE)
    with the allocation ledger of the MIG instances."""
    pods, attempts, _, _ = billed
    window = {"start": day, "end": day + dt.timedelta(days=1)}
    jobs_source = MetricSource.objects.get(name="jobs")
    jobs_source.label_filters = {"cluster": EU}
    jobs_source.save()
    assert metering_services.usage_pull(source=jobs_source, **window).status == "succeeded"
    counted = defaultdict(Decimal)
    for namespace, hour, seconds in UsageRecord.objects.filter(source=jobs_source).values_list(
        "namespace", "hour_start", "quantity"
    ):
        counted[(namespace, hour)] += seconds
    recorded = defaultdict(Decimal)
    active = defaultdict(int)
    for attempt in attempts:
        key = (f"dept-{attempt.department}",)
        _spread(attempt.start, attempt.billed_until, attempt.gpus, recorded, key)
        hour = _hour(attempt.start)
        while hour < attempt.end:
            active[(*key, hour)] += attempt.gpus
            hour += dt.timedelta(hours=1)
    for key in set(recorded) | set(counted):
        # A heartbeat's worth and a scrape's worth per GPU of each job in the hour.
        slack = (HEARTBEAT.total_seconds() + 2 * 15) * max(1, active[key])
        assert abs(counted[key] - recorded[key]) <= Decimal(slack), key

    device = MetricSource.objects.get(name="device")
    device.label_filters = {"cluster": US}
    device.save()
    assert metering_services.usage_pull(source=device, **window).status == "succeeded"
    mig_class = GpuClass.objects.get(slug="a100-1g")
    by_device = defaultdict(Decimal)
    for hour, seconds in UsageRecord.objects.filter(source=device, gpu_class=mig_class).values_list(
        "hour_start", "quantity"
    ):
        by_device[hour] += seconds
    asr = next(pod for pod in pods if pod.name == "asr")
    spread = defaultdict(Decimal)
    _spread(asr.start, asr.end, asr.gpus, spread, ())
    truth = {hour: seconds for (hour,), seconds in spread.items()}
    assert set(by_device) == set(truth)
    for hour, seconds in truth.items():
        assert abs(by_device[hour] - seconds) <= asr.gpus * MINUTE, hour
