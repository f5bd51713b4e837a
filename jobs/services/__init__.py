"""Operations that change generation jobs, by concept:

- :mod:`jobs.services.admission`: validation, submission and admission, release of waiting
  jobs (every decision locks the department row, so quotas hold under concurrency);
- :mod:`jobs.services.lifecycle`: cancel, requeue, and the sweeper;
- :mod:`jobs.services.worker`: the worker's compare-and-set steps (start, heartbeat, finish).

The read-only quota arithmetic (:func:`jobs.selectors.quota_uses` and its kin), a waiting
job's position and who may cancel a job are selectors (:mod:`jobs.selectors`). The services
are re-exported here, so ``from jobs import services; services.job_submit(...)`` keeps
working.
"""

from jobs.services.admission import (
    OffPeakStart,
    Submission,
    budgets_alert,
    job_submit,
    job_validate,
    jobs_release,
    jobs_release_all,
    off_peak_open,
    off_peak_start,
)
from jobs.services.lifecycle import job_cancel, job_requeue, jobs_sweep
from jobs.services.worker import Finished, Heartbeat, job_finish, job_heartbeat, job_start

__all__ = [
    "Finished",
    "Heartbeat",
    "OffPeakStart",
    "Submission",
    "budgets_alert",
    "job_cancel",
    "job_finish",
    "job_heartbeat",
    "job_requeue",
    "job_start",
    "job_submit",
    "job_validate",
    "jobs_release",
    "jobs_release_all",
    "jobs_sweep",
    "off_peak_open",
    "off_peak_start",
]
