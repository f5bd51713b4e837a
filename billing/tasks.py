"""Celery tasks of billing: thin wrappers around the services."""

from celery import shared_task

from billing import foresight_alerts, notifications, services


@shared_task(name="billing.refresh_drafts", ignore_result=True)
def refresh_drafts() -> int:
    """Recompute the months whose ledger or prices changed since their last refresh;
    returns how many months that was."""
    return services.periods_refresh()


@shared_task(name="billing.finalize_due", ignore_result=True)
def finalize_due() -> int:
    """Finalize the drafts of months whose grace period has passed."""
    return services.statements_finalize_due()


@shared_task(name="billing.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """One attempt at an alert's delivery to a channel (a no-op when it is not due)."""
    notifications.delivery_send(delivery_id=delivery_id)


@shared_task(name="billing.send_statement", ignore_result=True)
def send_statement(sending_id: int) -> None:
    """One attempt at mailing a statement or a month's digest (a no-op when not due)."""
    notifications.sending_send(sending_id=sending_id)


@shared_task(name="billing.notifications_due", ignore_result=True)
def notifications_due() -> int:
    """Start the deliveries and statement mails that are due; returns how many."""
    return notifications.sendings_due()


@shared_task(name="billing.forecast_alerts", ignore_result=True)
def forecast_alerts() -> int:
    """Tell managers of budgets the month-end forecast crosses; returns how many."""
    return len(foresight_alerts.forecast_alerts_send())


@shared_task(name="billing.spend_anomalies", ignore_result=True)
def spend_anomalies() -> int:
    """Record and tell days of unusual spend; returns how many."""
    return len(foresight_alerts.spend_anomalies_send())
