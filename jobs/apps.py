from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from departments.models import Quota
        from jobs import metrics
        from jobs.models import validate_job_kind_slug

        metrics.connect_worker_signals()
        if validate_job_kind_slug not in Quota.job_kind_validators:
            Quota.job_kind_validators.append(validate_job_kind_slug)
