from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from billing import foresight
        from jobs import costs
        from portal.periodic import periodic_tasks_install

        # The job pages show what jobs cost; billing, above jobs, computes it.
        costs.reader = foresight.job_costs

        def install(sender, **kwargs):
            if sender.label == "django_celery_beat":
                periodic_tasks_install()

        post_migrate.connect(install, weak=False, dispatch_uid="portal.periodic_tasks_install")


class PortalAdminConfig(AdminConfig):
    default_site = "core.admin_site.PortalAdminSite"
