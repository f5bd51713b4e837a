import datetime as dt
from decimal import Decimal

import pytest

from tests import factories
from tests.billing.receivers import smtp_server, tasks_run_at_once  # noqa: F401 (fixtures)
from tests.jobs.conftest import submit  # noqa: F401 (a fixture)

UTC = dt.UTC


def hour(day: int, hour_of_day: int, *, month: int = 3, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour_of_day, tzinfo=UTC)


class Ledger:
    """Writes billing-source ledger rows (one run per call) for the tests."""

    def __init__(self):
        # The metering migration installs it; a transactional test before this one may
        # have flushed it away.
        self.source = factories.MetricSourceFactory(name="allocation", is_billing=True)
        assert self.source.is_billing

    def add(self, *, at: dt.datetime, gpu_hours, department=None, gpu_class=None, namespace=None):
        return factories.UsageRecordFactory(
            source=self.source,
            department=department,
            gpu_class=gpu_class,
            hour_start=at,
            gpu_hours=Decimal(str(gpu_hours)),
            **({"namespace": namespace} if namespace else {}),
        )


@pytest.fixture
def ledger(db) -> Ledger:
    return Ledger()


@pytest.fixture
def fleet(db):
    """A100 (2 GPUs) at 2.00 EUR per GPU-hour since 2020, and two departments."""
    a100 = factories.GpuClassFactory(slug="a100", name="A100", capacity_gpus=2)
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    training = factories.DepartmentFactory(slug="training", name="Training")
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    return a100, marketing, training


class Jobs:
    """Runs portal jobs through the worker's real steps (start, heartbeats, finish) on a
    given clock, in a worker pool namespace: what the worker records is what is billed."""

    def __init__(self, settings):
        self.settings = settings

    def run(
        self,
        *,
        department,
        gpu_class,
        start: dt.datetime,
        end: dt.datetime,
        tier: str = "interactive",
        gpus: int = 1,
        kind=None,
        pool: str = "gpu-workers",
        cluster: str = "",
        beats: int = 3,
    ):
        from jobs import services as job_services

        self.settings.JOBS_WORKER_NAMESPACE = pool
        self.settings.JOBS_WORKER_CLUSTER = cluster
        job = factories.GenerationJobFactory(
            department=department,
            kind=kind or factories.JobKindFactory(slug="lipsync-render", name="Lip-sync render"),
            gpu_class=gpu_class,
            tier=tier,
            gpus=gpus,
            state="queued",
        )
        started = job_services.job_start(job_id=job.pk, worker="w1", now=start)
        assert started is not None
        for beat in range(1, beats + 1):
            job_services.job_heartbeat(
                job_id=job.pk,
                worker="w1",
                attempt=1,
                now=start + (end - start) * beat / (beats + 1),
            )
        assert job_services.job_finish(
            job_id=job.pk, worker="w1", attempt=1, state="succeeded", now=end
        )
        job.refresh_from_db()
        return job


@pytest.fixture
def jobs(db, settings) -> Jobs:
    return Jobs(settings)
