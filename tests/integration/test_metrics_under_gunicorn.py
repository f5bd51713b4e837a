"""``/metrics`` served by a real gunicorn with several worker processes over the test
database, started with the portal's own configuration (``portal/gunicorn.conf.py``):

- requests answered by different workers are all counted: the request histogram of every
  scrape, whichever worker answers it, is the sum of what each worker recorded in its own
  file (read here file by file);
- a worker killed mid-run takes none of its counts with it;
- every worker answers the same figures from the database;
- the web's files go to its own directory, never to the one exported for the Celery
  workers, and the files of an earlier run are gone when gunicorn starts.
"""

import concurrent.futures
import datetime as dt
import http.client
import os
import shutil
import signal
import time
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from billing import services as billing_services
from core.calendar import floor_hour, month_bounds, month_of
from departments.models import QuotaKind, Tier
from tests import factories
from tests.billing.conftest import Ledger
from tests.integration.conftest import database_quiet, database_url, free_port, portal_env, running

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WORKERS = 3
HEALTHZ = (("method", "GET"), ("status", "200"), ("view", "healthz"))
METRICS = (("method", "GET"), ("status", "200"), ("view", "metrics"))
COUNT = "portal_http_request_duration_seconds_count"


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _samples(text: str) -> dict:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(port: int) -> dict:
    status, body = _get(port, "/metrics")
    assert status == 200, body[:500]
    return _samples(body.decode())


def _count_by_file(folder, labels: tuple) -> dict[int, float]:
    """The request count under ``labels`` in each worker's histogram file, by the worker's
    process id, read one file at a time."""
    counts = {}
    for path in sorted(folder.glob("histogram_*.db")):
        alone = folder.parent / f"alone-{uuid.uuid4().hex}"
        alone.mkdir()
        shutil.copy(path, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        for family in registry.collect():
            for sample in family.samples:
                if sample.name == COUNT and tuple(sorted(sample.labels.items())) == labels:
                    counts[int(path.stem.removeprefix("histogram_"))] = sample.value
        shutil.rmtree(alone)
    return counts


def _database_figures(samples: dict) -> dict:
    """What a scrape read from the database (not the histogram, not the lag, which runs
    with the clock)."""
    return {
        key: value
        for key, value in samples.items()
        if not key[0].startswith(("portal_http_", "portal_metering_lag"))
    }


@pytest.fixture
def seeded():
    now = timezone.now()
    a100 = factories.GpuClassFactory(slug="a100", name="A100")
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    hour = max(month_bounds(now)[0], floor_hour(now) - dt.timedelta(hours=2))
    Ledger().add(at=hour, gpu_hours="12.5", department=marketing, gpu_class=a100)
    factories.QuotaFactory(
        department=marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("100")
    )
    factories.ServiceLevelFactory(department=marketing, tier=Tier.BATCH, gpu_classes=[a100])
    factories.GenerationJobFactory(
        department=marketing, gpu_class=a100, tier=Tier.BATCH, state="queued",
        gpu_hours_reserved=Decimal("2"), admitted_at=now,
    )  # fmt: skip
    billing_services.period_refresh(month=month_of(now))


def test_every_worker_counts_and_answers_the_same(seeded, tmp_path):
    web_dir = tmp_path / "web-metrics"
    workers_dir = tmp_path / "celery-workers-metrics"  # exported for the Celery workers
    web_dir.mkdir()
    workers_dir.mkdir()
    stale = web_dir / "histogram_1.db"
    stale.write_bytes(b"an earlier run's file")
    port = free_port()
    env = portal_env(
        DATABASE_URL=database_url(),
        DEBUG="0",
        SECRET_KEY="metrics-test-only-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        PORTAL_VAR_DIR=str(tmp_path),
        WEB_PROMETHEUS_MULTIPROC_DIR=str(web_dir),
        PROMETHEUS_MULTIPROC_DIR=str(workers_dir),
        METRICS_TOKEN="",
    )
    gunicorn = [
        "-m", "gunicorn", "-c", "portal/gunicorn.conf.py", "portal.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--timeout", "60",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    try:
        with (
            running(gunicorn, env=env, ready=lambda: _answers(port), log=log, new_session=True),
            concurrent.futures.ThreadPoolExecutor(16) as pool,
        ):
            # An earlier run's files are gone.
            assert not stale.exists()
            # Healthz requests, many at once, until at least two workers have answered
            # some (a sync worker answers one at a time, so the others take their share).
            for _ in range(20):
                statuses = list(pool.map(lambda _: _get(port, "/healthz")[0], range(48)))
                assert statuses == [200] * 48
                if len(_count_by_file(web_dir, HEALTHZ)) >= 2:
                    break
            by_worker = _count_by_file(web_dir, HEALTHZ)
            assert len(by_worker) >= 2, f"only one worker answered: {by_worker}"
            total = sum(by_worker.values())
            assert total >= 48

            # Scrapes, many at once, until at least two workers have answered some: each,
            # whichever worker answered it, sums every worker's file, and reads the same
            # figures from the database.
            for _ in range(20):
                scrapes = list(pool.map(lambda _: _scrape(port), range(12)))
                if len(_count_by_file(web_dir, METRICS)) >= 2:
                    break
            assert len(_count_by_file(web_dir, METRICS)) >= 2
            assert {samples[(COUNT, HEALTHZ)] for samples in scrapes} == {total}
            figures = [_database_figures(samples) for samples in scrapes]
            assert all(f == figures[0] for f in figures)
            spend = "portal_department_spend_month_to_date"
            assert figures[0][(spend, (("currency", "EUR"), ("department", "marketing")))] == 25
            used = (("department", "marketing"), ("scope", "all"))
            assert figures[0][("portal_budget_used_gpu_hours", used)] == 14.5  # 12.5 + 2
            queued = (("department", "marketing"), ("state", "queued"), ("tier", "batch"))
            assert figures[0][("portal_jobs", queued)] == 1

            # The busiest worker killed: gunicorn starts another, and its counts stay in
            # the sum.
            victim = max(by_worker, key=by_worker.get)
            os.kill(victim, signal.SIGKILL)
            before = set(_count_by_file(web_dir, METRICS))
            deadline = time.monotonic() + 30
            while not set(_count_by_file(web_dir, METRICS)) - before:
                assert time.monotonic() < deadline, "no new worker answered a scrape"
                samples = list(pool.map(lambda _: _scrape(port), range(6)))
                assert {s[(COUNT, HEALTHZ)] for s in samples} == {total}
    finally:
        database_quiet()
    text = log.read_text()
    assert f"Worker (pid:{victim}) was sent SIGKILL" in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    # The web's files in its own directory; the Celery workers' left alone.
    assert list(workers_dir.iterdir()) == []


def _answers(port: int) -> bool:
    try:
        return _get(port, "/metrics")[0] == 200
    except OSError:
        return False
