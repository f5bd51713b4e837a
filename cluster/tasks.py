"""Celery tasks of the cluster app: thin wrappers around the services."""

from celery import shared_task

from cluster import services


@shared_task(name="cluster.check_drift", ignore_result=True)
def check_drift() -> dict[str, str]:
    """Compare every cluster with what the portal renders for it, through Prometheus;
    record the findings and mail IT the new ones. Returns each cluster's check status."""
    return {check.cluster: check.status for check in services.drift_check()}
