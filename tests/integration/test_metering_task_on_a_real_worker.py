"""A metering task (the admin's re-pull), sent over a real Redis broker, runs in a real
Celery worker process that reads the real Prometheus and writes the ledger in PostgreSQL."""

import time

import pytest
from django.db import connection

from metering.models import MeteringRun, MetricSource, UsageRecord
from tests.conftest import builtin_sources_install
from tests.factories import DepartmentFactory, GpuClassFactory, NamespaceFactory
from tests.integration.conftest import celery_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_pull_sent_to_a_worker_fills_the_ledger(
    postgres, redis_url, prometheus_history, tmp_path
):
    # An earlier transactional test may have flushed what migrations created: make the
    # rows this test needs itself.
    marketing = DepartmentFactory(slug="marketing")
    NamespaceFactory(name="dept-marketing", department=marketing)
    GpuClassFactory(slug="a100", model_regex=".*A100.*")
    builtin_sources_install()
    allocation = MetricSource.objects.get(name="allocation")
    database = connection.settings_dict
    database_url = (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )
    with celery_worker(
        broker_url=redis_url,
        tmp_path=tmp_path,
        DATABASE_URL=database_url,
        PROMETHEUS_URL=prometheus_history.url,
    ) as worker:
        worker.client.send_task(
            "metering.pull_window",
            args=[
                allocation.pk,
                prometheus_history.at(10).isoformat(),
                prometheus_history.at(12).isoformat(),
            ],
            queue=worker.queue,
        )
        deadline = time.monotonic() + 30
        while not MeteringRun.objects.filter(status="succeeded").exists():
            assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
            time.sleep(0.2)

    run = MeteringRun.objects.get()
    assert (run.window_start, run.window_end) == (
        prometheus_history.at(10),
        prometheus_history.at(12),
    )
    marketing_a100 = UsageRecord.objects.get(
        namespace="dept-marketing",
        gpu_model="NVIDIA-A100-SXM4-80GB",
        hour_start=prometheus_history.at(10),
    )
    assert marketing_a100.quantity == 2400  # GPU-seconds: 2 GPUs for 20 minutes
    assert marketing_a100.department_id == marketing.pk
