"""Celery tasks of billing: thin wrappers around the services."""

from celery import shared_task

from billing import services


@shared_task(name="billing.refresh_drafts", ignore_result=True)
def refresh_drafts() -> int:
    """Recompute the months whose ledger or prices changed since their last refresh;
    returns how many months that was."""
    return services.periods_refresh()


@shared_task(name="billing.finalize_due", ignore_result=True)
def finalize_due() -> int:
    """Finalize the drafts of months whose grace period has passed."""
    return services.statements_finalize_due()
