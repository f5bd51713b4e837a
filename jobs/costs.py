"""What portal jobs cost, for the job pages.

Billing prices jobs and sits above jobs (it reads them), so jobs cannot ask billing
directly: the portal, which wires the apps, plugs billing's reader in here at start-up
(:class:`portal.apps.PortalConfig`). Without one, pages show no cost.
"""

from collections.abc import Callable, Iterable

# jobs (or their ids) -> {job id: cost with .amount, .currency, .final, .label}
reader: Callable[[Iterable], dict] | None = None


def job_costs(jobs: Iterable) -> dict:
    """Each job's cost by job id; jobs no statement line charges yet are left out."""
    return reader(jobs) if reader is not None else {}


def with_costs(jobs) -> list:
    """``jobs`` as a list, each with ``.cost`` (None when nothing charges it yet)."""
    jobs = list(jobs)
    costs = job_costs(jobs)
    for job in jobs:
        job.cost = costs.get(job.pk)
    return jobs
