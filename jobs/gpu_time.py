"""Recording the GPU time of a running attempt, hour by hour, as it is used.

The worker that holds an attempt records its time at every heartbeat and when the
attempt ends (:func:`jobs.services.job_heartbeat`, :func:`jobs.services.job_finish`): the
GPUs times the wall-clock time since the last record, cut at each UTC hour, added to that
hour's :class:`~jobs.models.JobGpuTime` row. So a job's time lands in the hours in which
its GPUs were used (a render from 21:30 to 23:30 is three hours' rows, priced at each
hour's off-peak multiplier), and an attempt cut short by its worker's death keeps what it
used up to its last heartbeat.
"""

import datetime as dt
import logging
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import Sum

from core.calendar import floor_hour, hours_between
from departments.models import Cluster
from jobs.models import GenerationJob, JobGpuTime

logger = logging.getLogger(__name__)

MILLISECOND = Decimal("0.001")


def worker_pool() -> tuple[str, int | None]:
    """Where this worker runs: its namespace (``JOBS_WORKER_NAMESPACE``) and the id of its
    cluster (``JOBS_WORKER_CLUSTER``, a cluster slug), for the jobs it starts."""
    slug = settings.JOBS_WORKER_CLUSTER
    cluster_id = None
    if slug:
        cluster_id = Cluster.objects.filter(slug=slug).values_list("pk", flat=True).first()
        if cluster_id is None:
            logger.warning("JOBS_WORKER_CLUSTER=%s names no cluster of the portal", slug)
    return settings.JOBS_WORKER_NAMESPACE, cluster_id


def attempt_gpu_time_record(job: GenerationJob, *, until: dt.datetime) -> Decimal:
    """Bring the attempt's hourly rows up to ``until``: each hour it touched since the last
    record holds its GPUs times the part of ``[started_at, until)`` inside that hour (set,
    not added, so many heartbeats never drift from the clock). Moves ``gpu_time_until`` on
    and adds what it recorded to ``job.gpu_seconds``.

    The caller holds the job's row lock (``select_for_update``) and has checked that its
    worker holds the attempt, so the time is recorded once. Returns the GPU-seconds added.
    """
    since = job.gpu_time_until or job.started_at
    if job.started_at is None or since is None or until <= since:
        return Decimal(0)
    attempt_span = (job.started_at, until)
    rows = {
        hour: (Decimal(job.gpus) * Decimal(inside.total_seconds())).quantize(
            MILLISECOND, rounding=ROUND_HALF_UP
        )
        for hour, inside in hours_between(*attempt_span)
        if hour >= floor_hour(since)
    }
    before = JobGpuTime.objects.filter(job=job).aggregate(total=Sum("gpu_seconds"))["total"]
    for hour, seconds in rows.items():
        updated = JobGpuTime.objects.filter(job=job, attempt=job.attempts, hour_start=hour).update(
            gpu_seconds=seconds
        )
        if not updated and seconds:
            JobGpuTime.objects.create(
                job=job,
                attempt=job.attempts,
                hour_start=hour,
                gpu_seconds=seconds,
                gpus=job.gpus,
                department_id=job.department_id,
                gpu_class_id=job.gpu_class_id,
                tier=job.tier,
                kind_id=job.kind_id,
                pool_namespace=job.pool_namespace,
                cluster_id=job.cluster_id,
            )
    after = JobGpuTime.objects.filter(job=job).aggregate(total=Sum("gpu_seconds"))["total"]
    added = (after or Decimal(0)) - (before or Decimal(0))
    job.gpu_time_until = until
    job.gpu_seconds += added  # earlier attempts' time stays (also from before the rows)
    GenerationJob.objects.filter(pk=job.pk).update(
        gpu_time_until=job.gpu_time_until, gpu_seconds=job.gpu_seconds
    )
    return added
