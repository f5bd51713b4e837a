from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # The tasks are registered in every process, not only in workers (which
        # autodiscover them): the services start them by name, and tests run them eagerly.
        from billing import notifications, tasks  # noqa: F401
        from jobs.signals import quota_alerts_recorded

        quota_alerts_recorded.connect(
            notifications.on_quota_alerts, dispatch_uid="billing.notifications.on_quota_alerts"
        )
