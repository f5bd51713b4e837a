"""Handing admitted jobs to the broker.

Called after the admitting transaction commits. When the broker is down the job simply
stays ``queued`` with no ``dispatched_at``; the periodic sweeper
(:func:`jobs.services.jobs_sweep`) sends it once the broker is back. Nothing is lost, and a
duplicate delivery is harmless (the worker's start is a compare-and-set).

The task is sent by its name through the current Celery app, so this module needs neither
the task's code (``jobs.tasks`` → the runner → the services, which call this) nor the
portal's app: the jobs app imports nothing above it and no circle.
"""

import logging

from celery import current_app
from django.utils import timezone

from jobs.models import GenerationJob, JobState

logger = logging.getLogger(__name__)

# The task that runs a job (jobs.tasks.run_job).
RUN_TASK = "jobs.run"
# Fail fast when the broker is unreachable: the sweeper retries, the submitter should not
# wait on it.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5}


def broker_priority(sla_priority: int) -> int:
    """The message priority for an SLA priority (0-9, higher first): as is for RabbitMQ
    (higher first too), turned around for Redis, whose transport serves 0 first."""
    if current_app.conf.broker_url.startswith(("redis://", "rediss://")):
        return 9 - sla_priority
    return sla_priority


def job_dispatch(*, job_id, queue: str | None = None, priority: int | None = None) -> bool:
    """Send a queued job to the queue of its GPU class and tier, with its SLA priority.
    Returns whether the broker took it. Admission passes the queue and priority it just
    decided; otherwise they are read, and a job that is no longer queued is not sent (a
    duplicate would be harmless anyway: the worker's start is a compare-and-set)."""
    if queue is None or priority is None:
        job = (
            GenerationJob.objects.filter(pk=job_id, state=JobState.QUEUED)
            .select_related("gpu_class")
            .first()
        )
        if job is None:
            return False  # cancelled, or already taken by a worker
        queue, priority = job.queue, job.priority
    try:
        current_app.send_task(
            RUN_TASK,
            args=[str(job_id)],
            queue=queue,
            priority=broker_priority(priority),
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except Exception as exc:  # kombu raises several kinds; the sweeper will send it again
        logger.warning("Job %s stays queued: the broker did not take it (%s)", job_id, exc)
        return False
    GenerationJob.objects.filter(pk=job_id).update(dispatched_at=timezone.now())
    return True
