"""What GPU workers can run (JobKind), each submitted job (GenerationJob) and the quota
alerts already sent (QuotaAlert).

A job's argv is built from its kind's template, one list element per argument: parameters
fill separate elements and never pass through a shell (see :mod:`jobs.argv`).
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from departments.models import Cluster, Department, GpuClass, Quota, Tier, TimestampedModel
from jobs import argv as argv_rules


def default_params_schema() -> dict:
    return {"type": "object", "properties": {}, "additionalProperties": False}


def default_allowed_tiers() -> list[str]:
    return [Tier.INTERACTIVE, Tier.BATCH]


def validate_allowed_tiers(value) -> None:
    if (
        not isinstance(value, list)
        or not value
        or any(tier not in Tier.values for tier in value)
        or len(set(value)) != len(value)
    ):
        raise ValidationError(f"Give one or more distinct tiers out of {', '.join(Tier.values)}.")


class JobKind(TimestampedModel):
    """A command GPU workers can run, with the JSON schema of its parameters."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(
        max_length=60, unique=True, help_text="Used in the API and by quotas narrowed to a kind."
    )
    description = models.TextField(blank=True)
    argv_template = models.JSONField(
        "argv template",
        validators=[argv_rules.validate_argv_template],
        help_text='A list, one element per argument, for example ["espeak-ng", "-w", '
        '"{output_dir}/speech.wav", "{text}"]. {name} is replaced by the parameter of that '
        "name; {output_dir}, {job_id} and {python} are provided. Never run through a shell.",
    )
    params_schema = models.JSONField(
        "parameters JSON schema",
        default=default_params_schema,
        help_text="JSON schema (draft 2020-12) of the parameters: an object whose properties "
        "are strings, numbers, integers or booleans. The submit form is built from it.",
    )
    default_gpus = models.PositiveSmallIntegerField(
        "default GPUs", default=1, validators=[MinValueValidator(1)]
    )
    max_runtime_s = models.PositiveIntegerField(
        "max runtime (s)",
        validators=[MinValueValidator(1)],
        help_text="The job is stopped, and fails, when it runs longer than this.",
    )
    allowed_tiers = models.JSONField(
        default=default_allowed_tiers, validators=[validate_allowed_tiers]
    )
    active = models.BooleanField(default=True, help_text="Inactive kinds accept no new jobs.")

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(default_gpus__gt=0), name="job_kind_default_gpus_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_runtime_s__gt=0), name="job_kind_max_runtime_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors = {}
        try:
            argv_rules.validate_params_schema(self.params_schema)
        except ValidationError as exc:
            errors["params_schema"] = exc.messages
        if not errors and isinstance(self.argv_template, list):
            try:
                argv_rules.validate_placeholders(self.argv_template, self.params_schema)
            except ValidationError as exc:
                errors["argv_template"] = exc.messages
        if errors:
            raise ValidationError(errors)


def validate_job_kind_slug(slug: str) -> None:
    """A quota narrowed to a job kind names one that exists."""
    if not JobKind.objects.filter(slug=slug).exists():
        known = ", ".join(JobKind.objects.order_by("slug").values_list("slug", flat=True))
        raise ValidationError(
            f"No job kind “{slug}”." + (f" Known kinds: {known}." if known else "")
        )


class JobState(models.TextChoices):
    SUBMITTED = "submitted", "Submitted"
    WAITING = "waiting", "Waiting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
OPEN_STATES = (JobState.SUBMITTED, JobState.WAITING, JobState.QUEUED, JobState.RUNNING)
FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED)


class GenerationJobQuerySet(models.QuerySet):
    """Jobs, with the one waiting line that admission, release, the sweeper and the job
    page share: a higher SLA priority first, then the older submission first."""

    def in_line(self) -> "GenerationJobQuerySet":
        return self.order_by("-priority", "submitted_at")

    def ahead_of(self, job: "GenerationJob") -> "GenerationJobQuerySet":
        """The jobs that come before ``job`` in the line."""
        return self.filter(ahead_of(job))


def ahead_of(job: "GenerationJob", *, path: str = "") -> Q:
    """The condition of :meth:`GenerationJobQuerySet.ahead_of`, for jobs reached through
    ``path`` (a relation to jobs, e.g. in an aggregate's filter)."""
    prefix = f"{path}__" if path else ""
    return Q(**{f"{prefix}priority__gt": job.priority}) | Q(
        **{f"{prefix}priority": job.priority, f"{prefix}submitted_at__lt": job.submitted_at}
    )


class GenerationJob(models.Model):
    """One unit of GPU work a department asked for, from submission to its end."""

    State = JobState

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="jobs")
    submitter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs"
    )
    kind = models.ForeignKey(JobKind, on_delete=models.PROTECT, related_name="jobs")
    params = models.JSONField(default=dict, blank=True)
    tier = models.CharField(max_length=16, choices=Tier.choices)
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="jobs")
    namespace = models.CharField(
        max_length=63,
        blank=True,
        help_text="The department's namespace the job's GPU-seconds are counted under.",
    )
    gpus = models.PositiveSmallIntegerField("GPUs", validators=[MinValueValidator(1)])
    max_runtime_s = models.PositiveIntegerField("max runtime (s)")
    priority = models.PositiveSmallIntegerField(help_text="From the SLA, 0 to 9.")
    off_peak = models.BooleanField(
        "held for off-peak", default=False, help_text="Batch work run only in off-peak hours."
    )
    idempotency_key = models.CharField(max_length=100, blank=True)

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.SUBMITTED)
    reason = models.TextField(
        blank=True, help_text="Why the job waits or was refused, or why it ended as it did."
    )
    blocking_quota = models.ForeignKey(
        Quota,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="blocked_jobs",
        help_text="The quota that holds the job back (while it waits) or refused it.",
    )
    blocking_use = models.DecimalField(
        max_digits=14,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="That quota's use when it held or refused the job.",
    )

    # Set by the submission itself (not auto_now_add, which would stamp the INSERT a moment
    # after admission): a job admitted at once has admitted_at == submitted_at.
    submitted_at = models.DateTimeField(default=timezone.now, db_index=True)
    admitted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job was last handed to the broker."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    worker = models.CharField(max_length=200, blank=True)
    pool_namespace = models.CharField(
        "worker pool namespace",
        max_length=63,
        blank=True,
        help_text="The namespace of the worker its latest attempt ran on (JOBS_WORKER_NAMESPACE).",
    )
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The cluster of that worker (JOBS_WORKER_CLUSTER).",
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    gpu_seconds = models.DecimalField(
        "GPU-seconds",
        max_digits=14,
        decimal_places=3,
        default=Decimal("0"),
        help_text="GPU time of all its attempts so far (the sum of its hourly GPU time).",
    )
    gpu_time_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="How far the running attempt's GPU time has been recorded (each heartbeat "
        "records it, hour by hour).",
    )
    gpu_hours_reserved = models.DecimalField(
        "GPU-hours reserved",
        max_digits=12,
        decimal_places=6,
        default=Decimal("0"),
        help_text="GPUs times max runtime, held against the monthly budget until the job ends.",
    )
    exit_code = models.IntegerField(null=True, blank=True)
    result_files = models.JSONField(
        default=list, blank=True, help_text="Files the job wrote, relative to its folder."
    )
    error = models.TextField(blank=True)
    log_tail = models.TextField(blank=True)

    objects = GenerationJobQuerySet.as_manager()

    class Meta:
        ordering = ["-submitted_at"]
        verbose_name = "generation job"
        indexes = [
            models.Index(fields=["department", "state"], name="job_department_state"),
            models.Index(fields=["state", "priority", "submitted_at"], name="job_release_order"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["department", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="job_idempotency_key_unique_per_department",
                violation_error_message="This department already submitted a job with this "
                "idempotency key.",
            ),
            models.CheckConstraint(condition=Q(state__in=JobState.values), name="job_state_valid"),
            models.CheckConstraint(condition=Q(tier__in=Tier.values), name="job_tier_valid"),
            models.CheckConstraint(condition=Q(gpus__gt=0), name="job_gpus_positive"),
            models.CheckConstraint(
                condition=Q(gpu_seconds__gte=0), name="job_gpu_seconds_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(off_peak=False) | Q(tier=Tier.BATCH),
                name="job_only_batch_held_off_peak",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.department} ({self.get_state_display()})"

    @property
    def short_id(self) -> str:
        return str(self.id)[:8]

    @property
    def queue(self) -> str:
        return self.gpu_class.queue_for(self.tier)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def output_dir_name(self) -> str:
        """The job's folder under MEDIA_ROOT."""
        return f"jobs/{self.id}"


class JobGpuTime(models.Model):
    """The GPU time one attempt of a job used in one UTC hour: what billing charges the
    job's department for, in the hour the GPU was used.

    Written by the worker that holds the attempt, at every heartbeat and when the attempt
    ends, so a render from 21:30 to 23:30 counts in three hours, and an attempt cut short
    by its worker's death keeps the time it held the GPU up to its last heartbeat (its
    retry is another attempt, with rows of its own). The job's department, class, tier,
    kind, worker pool and cluster are copied here so the month is priced in one grouped
    query."""

    job = models.ForeignKey(GenerationJob, on_delete=models.PROTECT, related_name="gpu_time")
    attempt = models.PositiveSmallIntegerField()
    hour_start = models.DateTimeField(help_text="Start of the UTC hour.")
    gpu_seconds = models.DecimalField("GPU-seconds", max_digits=14, decimal_places=3)
    gpus = models.PositiveSmallIntegerField("GPUs")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="+")
    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="+")
    tier = models.CharField(max_length=16, choices=Tier.choices)
    kind = models.ForeignKey(JobKind, on_delete=models.PROTECT, related_name="+")
    pool_namespace = models.CharField(max_length=63, blank=True)
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["hour_start", "job_id", "attempt"]
        verbose_name = "job GPU time"
        verbose_name_plural = "job GPU time"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "hour_start"], name="one_gpu_time_per_attempt_and_hour"
            ),
            models.CheckConstraint(
                condition=Q(gpu_seconds__gte=0), name="job_gpu_time_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(gpu_seconds__lte=F("gpus") * 3600),
                name="job_gpu_time_within_its_hour",
            ),
        ]
        indexes = [models.Index(fields=["hour_start", "department"])]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.attempt} {self.hour_start:%Y-%m-%d %H:00}"


class QuotaAlert(models.Model):
    """A threshold of a quota that was reached in one period; the unique constraint makes
    sure the department's managers hear about it once per period."""

    quota = models.ForeignKey(Quota, on_delete=models.CASCADE, related_name="alerts")
    period = models.CharField(
        max_length=20,
        help_text="The quota's period: 2026-11, 2026-11-25, or the day for "
        "quotas on what runs at once.",
    )
    threshold_pct = models.PositiveSmallIntegerField("threshold (%)")
    use = models.DecimalField(max_digits=14, decimal_places=3)
    limit = models.DecimalField(max_digits=12, decimal_places=3)
    job = models.ForeignKey(
        GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["quota", "period", "threshold_pct"], name="one_alert_per_quota_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota} reached {self.threshold_pct} % in {self.period}"
