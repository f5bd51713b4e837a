"""Celery tasks of jobs: thin wrappers around the runner and the services."""

from celery import shared_task
from django.conf import settings

from jobs import runner, services


@shared_task(
    bind=True,
    name="jobs.run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def run_job(self, job_id: str) -> str:
    """Run one job. The message is acknowledged only when the attempt has ended, and given
    back if the worker dies, so no admitted job is lost; a delivery that finds the job
    running elsewhere looks again later (it may be the delivery of a worker that died)."""
    outcome = runner.job_run(job_id=job_id, worker=self.request.hostname or "worker")
    if outcome == runner.Outcome.BUSY:
        raise self.retry(countdown=settings.JOBS_HEARTBEAT_STALE_S)
    return outcome


@shared_task(name="jobs.release_waiting", ignore_result=True)
def release_waiting() -> int:
    """Admit waiting jobs that have room now (next day, freed slots, off-peak opening)."""
    return services.jobs_release_all()


@shared_task(name="jobs.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Send queued jobs no broker took, and queue again jobs whose worker died."""
    return services.jobs_sweep()


@shared_task(name="jobs.alert_budgets", ignore_result=True)
def alert_budgets() -> int:
    """Alert on monthly GPU-hour budgets that use itself (metered or reserved) reached."""
    return len(services.budgets_alert())
