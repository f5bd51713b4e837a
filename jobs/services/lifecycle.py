"""A job's life after admission: cancel, requeue, and the sweeper that sends again what no
broker took and settles running jobs whose worker stopped answering."""

import datetime as dt
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import dispatch
from jobs.models import GenerationJob, JobState
from jobs.selectors import user_can_cancel
from jobs.services.admission import _admit, _lock_department, _set_state, jobs_release

logger = logging.getLogger(__name__)


def job_cancel(*, job: GenerationJob, user) -> GenerationJob:
    """Cancel a job. One that waits or is queued ends at once; a running one is marked,
    and its worker stops the command within a heartbeat and records it cancelled.
    Raises ``ValidationError`` for a job that has already ended."""
    if not user_can_cancel(user=user, job=job):
        raise PermissionDenied("Only the submitter, the department's managers and IT cancel jobs.")
    with transaction.atomic():
        _lock_department(job.department_id)
        job = GenerationJob.objects.select_for_update().get(pk=job.pk)
        now = timezone.now()
        if job.state in (JobState.SUBMITTED, JobState.WAITING, JobState.QUEUED):
            _set_state(
                job,
                JobState.CANCELLED,
                reason=f"Cancelled by {user} before it started.",
                quota=None,
                use=None,
                finished_at=now,
                cancel_requested_at=now,
                cancelled_by=user,
            )
        elif job.state == JobState.RUNNING:
            if job.cancel_requested_at is None:
                job.cancel_requested_at = now
                job.cancelled_by = user
                job.reason = f"Cancel requested by {user}; its worker is stopping it."
                job.save(update_fields=["cancel_requested_at", "cancelled_by", "reason"])
        else:
            raise ValidationError(f"The job has already ended ({job.get_state_display().lower()}).")
        transaction.on_commit(lambda: _release_later(job.department_id))
    return job


def job_requeue(*, job: GenerationJob, user) -> GenerationJob:
    """Run a job again: a failed or cancelled job goes back through admission (its quotas
    apply again); a queued job is sent to the broker again; a running job whose worker
    stopped answering is queued again. Raises ``ValidationError`` otherwise."""
    stale = timezone.now() - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    with transaction.atomic():
        department = _lock_department(job.department_id)
        job = (
            GenerationJob.objects.select_for_update()
            .select_related("kind", "gpu_class")
            .get(pk=job.pk)
        )
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            # Admitted afresh (today's count and the reservation apply again); the
            # GPU-seconds of earlier attempts stay, and the next attempt's are added.
            job.finished_at = job.cancel_requested_at = job.cancelled_by = None
            job.admitted_at = job.queued_at = job.dispatched_at = None
            job.error = ""
            job.exit_code = None
            _set_state(job, JobState.SUBMITTED, reason=f"Requeued by {user}.", quota=None, use=None)
            _admit(job, quotas=list(department.quotas.select_related("gpu_class")), now=None)
        elif job.state == JobState.QUEUED:
            transaction.on_commit(lambda: dispatch.job_dispatch(job_id=job.pk))
        elif job.state == JobState.RUNNING and (
            job.heartbeat_at is None or job.heartbeat_at < stale
        ):
            _stale_job_settle(job, now=timezone.now())
        else:
            raise ValidationError(
                f"A {job.get_state_display().lower()} job cannot be requeued; cancel it or "
                "wait for it to end."
            )
    return job


def _stale_job_settle(job: GenerationJob, *, now: dt.datetime) -> str:
    """A running job whose worker stopped answering (the caller holds the department
    lock): it ends cancelled when a cancel was asked for, fails once it has had
    ``JOBS_MAX_ATTEMPTS`` attempts (a job that kills its worker must not do so forever), and
    is queued again otherwise. Returns what was done."""
    if job.cancel_requested_at is not None:
        outcome, state = "cancelled", JobState.CANCELLED
        reason = f"Cancelled; its worker {job.worker} stopped answering."
    elif job.attempts >= settings.JOBS_MAX_ATTEMPTS:
        outcome, state = "failed", JobState.FAILED
        reason = (
            f"Its worker stopped answering during each of its {job.attempts} attempts; "
            "it is not tried again."
        )
    else:
        reason = f"Its worker {job.worker} stopped answering; queued again."
        job.worker = ""
        _set_state(
            job,
            JobState.QUEUED,
            reason=reason,
            quota=None,
            use=None,
        )
        transaction.on_commit(lambda: dispatch.job_dispatch(job_id=job.pk))
        return "requeued"
    _set_state(job, state, reason=reason, quota=None, use=None, finished_at=now)
    if state == JobState.FAILED:
        job.error = reason
        job.save(update_fields=["error"])
    transaction.on_commit(lambda: _release_later(job.department_id))
    return outcome


def _release_later(department_id: int) -> None:
    try:
        jobs_release(department_id=department_id)
    except Exception:  # the periodic release will try again
        logger.exception("Releasing waiting jobs of department %s failed", department_id)


def jobs_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """The safety net of dispatch: queued jobs no broker took (or took too long ago) are
    sent again; running jobs whose worker stopped answering are settled by
    :func:`_stale_job_settle` (queued again, cancelled, or failed after too many
    attempts). Harmless to run any time: the start
    compare-and-set makes a duplicate delivery a no-op."""
    now = now or timezone.now()
    resend_before = now - dt.timedelta(seconds=settings.JOBS_REDISPATCH_AFTER_S)
    stale = now - dt.timedelta(seconds=settings.JOBS_HEARTBEAT_STALE_S)
    counts = {"dispatched": 0, "requeued": 0, "cancelled": 0, "failed": 0}
    for job_id in list(
        GenerationJob.objects.filter(state=JobState.QUEUED)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=resend_before))
        .in_line()
        .values_list("pk", flat=True)
    ):
        counts["dispatched"] += bool(dispatch.job_dispatch(job_id=job_id))
    for job in GenerationJob.objects.filter(state=JobState.RUNNING, heartbeat_at__lt=stale):
        with transaction.atomic():
            _lock_department(job.department_id)
            job = GenerationJob.objects.select_for_update().get(pk=job.pk)
            if job.state != JobState.RUNNING or (job.heartbeat_at and job.heartbeat_at >= stale):
                continue
            counts[_stale_job_settle(job, now=now)] += 1
    return counts
