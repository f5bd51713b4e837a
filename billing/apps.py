from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import notifications
        from jobs.signals import quota_alerts_recorded

        quota_alerts_recorded.connect(
            notifications.on_quota_alerts, dispatch_uid="billing.notifications.on_quota_alerts"
        )
