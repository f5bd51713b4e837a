"""The worker's compare-and-set steps: take a job, beat, finish. Only the worker holding an
attempt can record its end, so its GPU time is counted once."""

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs import gpu_time
from jobs.models import GenerationJob, JobState
from jobs.services.lifecycle import _release_later

logger = logging.getLogger(__name__)


def job_start(*, job_id, worker: str, now: dt.datetime | None = None) -> GenerationJob | None:
    """Take the job for ``worker``: a compare-and-set from ``queued`` (or from ``running``
    when its worker has stopped sending heartbeats) to ``running``. Returns the job, or
    ``None`` when another worker has it or it has ended: a redelivered message never runs
    a job twice at once. The attempt's GPU time starts counting at ``now``, in this
    worker's pool (:func:`jobs.gpu_time.worker_pool`)."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    pool_namespace, cluster_id = gpu_time.worker_pool()
    taken = GenerationJob.objects.filter(
        Q(state=JobState.QUEUED)
        | Q(
            state=JobState.RUNNING,
            heartbeat_at__lt=stale,
            attempts__lt=settings.JOBS_MAX_ATTEMPTS,
        ),
        pk=job_id,
        cancel_requested_at__isnull=True,
    ).update(
        state=JobState.RUNNING,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
        gpu_time_until=now,
        pool_namespace=pool_namespace,
        cluster_id=cluster_id,
        attempts=F("attempts") + 1,
        reason="",
    )
    if not taken:
        return None
    return GenerationJob.objects.select_related("kind", "gpu_class", "department").get(pk=job_id)


@dataclass(frozen=True)
class Heartbeat:
    ours: bool  # False: another worker took the job over, or it ended; stop at once
    cancel_requested: bool
    gpu_seconds_added: Decimal = Decimal(0)  # GPU time recorded by this beat


def _held_attempt(*, job_id, worker: str, attempt: int) -> GenerationJob | None:
    """The job, row-locked, if ``worker`` still holds its ``attempt``."""
    return (
        GenerationJob.objects.select_for_update()
        .filter(pk=job_id, state=JobState.RUNNING, worker=worker, attempts=attempt)
        .first()
    )


def job_heartbeat(
    *, job_id, worker: str, attempt: int, now: dt.datetime | None = None
) -> Heartbeat:
    """The worker still runs the attempt: note the beat and record its GPU time up to
    ``now``. Says whether the attempt is still the worker's and whether a cancel was
    asked for."""
    now = now or timezone.now()
    with transaction.atomic():
        job = _held_attempt(job_id=job_id, worker=worker, attempt=attempt)
        if job is None:
            return Heartbeat(ours=False, cancel_requested=False)
        GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=now)
        added = gpu_time.attempt_gpu_time_record(job, until=now)
    return Heartbeat(
        ours=True,
        cancel_requested=job.cancel_requested_at is not None,
        gpu_seconds_added=added,
    )


@dataclass(frozen=True)
class Finished:
    """What :func:`job_finish` did: truthy when the end was recorded."""

    recorded: bool
    gpu_seconds_added: Decimal = Decimal(0)  # GPU time recorded since the last heartbeat

    def __bool__(self) -> bool:
        return self.recorded


def job_finish(
    *,
    job_id,
    worker: str,
    attempt: int,
    state: str,
    exit_code: int | None = None,
    reason: str = "",
    error: str = "",
    log_tail: str = "",
    result_files: list[str] | None = None,
    now: dt.datetime | None = None,
) -> Finished:
    """Record the end of the worker's attempt at ``now``: its GPU time up to then, and its
    state. A compare-and-set that only the worker holding the job can make, so its GPU
    time is counted once; then the department's waiting jobs are released."""
    if state not in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        raise ValueError(f"{state} is not a final state")
    now = now or timezone.now()
    with transaction.atomic():
        job = _held_attempt(job_id=job_id, worker=worker, attempt=attempt)
        if job is None:
            return Finished(recorded=False)
        added = gpu_time.attempt_gpu_time_record(job, until=now)
        GenerationJob.objects.filter(pk=job.pk).update(
            state=state,
            finished_at=now,
            exit_code=exit_code,
            reason=reason,
            error=error,
            log_tail=log_tail,
            result_files=result_files or [],
        )
        department_id = job.department_id
        transaction.on_commit(lambda: _release_later(department_id))
    return Finished(recorded=True, gpu_seconds_added=added)
