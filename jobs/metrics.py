"""The workers' Prometheus counter ``portal_job_gpu_seconds_total{namespace,gpu_class,kind}``.

Each worker serves it over HTTP when ``JOBS_METRICS_PORT`` is set; Prometheus scrapes it
and the metering ``jobs`` source turns it into GPU-hours. A prefork worker runs jobs in
several child processes, so the counter uses prometheus-client's multiprocess mode: each
process writes its values to files under ``PROMETHEUS_MULTIPROC_DIR`` and the worker's
main process serves their sum. The directory is emptied when the worker starts (the
counter then restarts from zero, which ``increase()`` handles like any counter reset).

``prometheus_client`` is imported lazily: multiprocess mode is chosen when the library is
first imported, which must happen after the directory is set.
"""

import logging
import os
import shutil
from pathlib import Path

from django.conf import settings

from departments.models import Department, ServiceLevel
from departments.selectors import job_namespace
from jobs.models import JobKind

logger = logging.getLogger(__name__)

METRIC = "portal_job_gpu_seconds"
_counter = None


def _gpu_seconds_counter():
    global _counter
    if _counter is None:
        from prometheus_client import Counter

        _counter = Counter(
            METRIC,
            "GPU-seconds used by generation jobs, counted at each heartbeat while they run.",
            ["namespace", "gpu_class", "kind"],
        )
    return _counter


def job_series_create(*, namespace: str, gpu_class: str, kind: str) -> None:
    """Make the series exist at 0 (a no-op when it already does)."""
    _gpu_seconds_counter().labels(namespace=namespace, gpu_class=gpu_class, kind=kind)


def known_series() -> set[tuple[str, str, str]]:
    """Every (namespace, GPU class, kind) a job could be counted under: each department's
    namespace (the first by name, as admission picks it) with each GPU class its SLAs
    allow, and each active kind that allows that tier."""
    namespace_of = dict(
        Department.objects.annotate(job_namespace=job_namespace()).values_list(
            "pk", "job_namespace"
        )
    )
    kinds = list(JobKind.objects.filter(active=True).values_list("slug", "allowed_tiers"))
    series = set()
    for level in ServiceLevel.objects.prefetch_related("gpu_classes"):
        namespace = namespace_of.get(level.department_id) or ""
        for gpu_class in level.gpu_classes.all():
            for slug, tiers in kinds:
                if level.tier in tiers:
                    series.add((namespace, gpu_class.slug, slug))
    return series


def job_gpu_seconds_add(*, namespace: str, gpu_class: str, kind: str, seconds: float) -> None:
    if seconds > 0:
        _gpu_seconds_counter().labels(namespace=namespace, gpu_class=gpu_class, kind=kind).inc(
            seconds
        )


def multiproc_dir() -> Path:
    return Path(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        or settings.VAR_DIR / "prometheus-multiproc" / str(settings.JOBS_METRICS_PORT)
    )


def metrics_server_start() -> None:
    """Serve the counter on ``JOBS_METRICS_ADDR:JOBS_METRICS_PORT`` from the worker's main
    process (called when a worker starts, before its pool forks)."""
    port = settings.JOBS_METRICS_PORT
    if not port:
        return
    folder = multiproc_dir()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, addr=settings.JOBS_METRICS_ADDR, registry=registry)
    # Every series the worker may count starts at 0 in the first scrape, so that even the
    # first job after a (re)start, however short, shows as an increase.
    from django.db import connections

    try:
        for namespace, gpu_class, kind in known_series():
            job_series_create(namespace=namespace, gpu_class=gpu_class, kind=kind)
    except Exception:  # the database is not reachable yet: series appear as jobs start
        logger.exception("Could not create the job counter series at start")
    finally:
        connections.close_all()  # the pool forks next; children open their own
    logger.info(
        "Serving %s_total on http://%s:%s/metrics", METRIC, settings.JOBS_METRICS_ADDR, port
    )


def connect_worker_signals() -> None:
    from celery.signals import worker_init, worker_process_shutdown

    def on_worker_init(**kwargs):
        metrics_server_start()

    def on_process_shutdown(pid=None, **kwargs):
        if settings.JOBS_METRICS_PORT and "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())

    worker_init.connect(on_worker_init, weak=False, dispatch_uid="jobs.metrics.worker_init")
    worker_process_shutdown.connect(
        on_process_shutdown, weak=False, dispatch_uid="jobs.metrics.process_shutdown"
    )
