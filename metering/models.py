"""The metering ledger: where GPU usage is read from (MetricSource), each pull
(MeteringRun) and the hourly rows it wrote (UsageRecord)."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from simple_history.models import HistoricalRecords

from departments.models import Cluster, Department, GpuClass, TimestampedModel
from metering import promql, quantities

label_name_validator = RegexValidator(
    promql.LABEL_NAME_RE, "A Prometheus label name: letters, digits and underscores."
)


class Measure(models.TextChoices):
    """What a source's query returns per namespace, GPU model and hour. GPU time is kept
    in the ledger as GPU-seconds whichever of the two a query returns."""

    GPU_SECONDS = "gpu_seconds", "GPU-seconds"
    GPU_HOURS = "gpu_hours", "GPU-hours"
    LATENCY_P95_MS = "latency_p95_ms", "p95 latency (ms)"


GPU_TIME_MEASURES = (Measure.GPU_SECONDS, Measure.GPU_HOURS)


def validate_label_filters(value) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Give label filters as an object, for example {"cluster": "prod"}.')
    for name, label_value in value.items():
        if not promql.LABEL_NAME_RE.match(str(name)):
            raise ValidationError(f"{name!r} is not a Prometheus label name.")
        if not isinstance(label_value, str):
            raise ValidationError(f"The value of {name} must be a string.")


class MetricSource(TimestampedModel):
    """A PromQL template that yields, per namespace and GPU model, one value per UTC hour."""

    name = models.SlugField(max_length=60, unique=True)
    description = models.TextField(blank=True)
    measure = models.CharField(
        max_length=20,
        choices=Measure.choices,
        default=Measure.GPU_SECONDS,
        help_text="What the query returns per hour; GPU time is kept as GPU-seconds either way.",
    )
    query_template = models.TextField(
        help_text="PromQL evaluated at the end of each UTC hour, returning that hour's value per "
        "namespace and GPU model. Placeholders: {{filters}} (the label filters below, escaped), "
        "{{namespace_label}}, {{model_label}}."
    )
    namespace_label = models.CharField(
        max_length=100,
        default="namespace",
        validators=[label_name_validator],
        help_text="The result label that carries the Kubernetes namespace "
        "(exported_namespace for the DCGM exporter).",
    )
    model_label = models.CharField(
        max_length=100,
        blank=True,
        validators=[label_name_validator],
        help_text="The result label that carries the GPU model; blank for per-namespace "
        "figures such as latency.",
    )
    label_filters = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_label_filters],
        help_text='Extra label matchers for every selector, for example {"cluster": "prod-eu"}.',
    )
    prometheus_url = models.URLField(
        "Prometheus URL", blank=True, help_text="Blank uses the PROMETHEUS_URL setting."
    )
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="metric_sources",
        help_text="The cluster this source measures (its own Prometheus URL, or a cluster "
        "label filter on a shared Thanos or Mimir). Blank: a fleet of one cluster.",
    )
    auth_header = models.CharField(
        "Authorization header",
        max_length=500,
        blank=True,
        help_text='Sent as the Authorization header, for example "Bearer <token>".',
    )
    enabled = models.BooleanField(default=True)
    is_billing = models.BooleanField(
        "bills",
        default=False,
        help_text="The source whose GPU time is priced and counted against budgets: one per "
        "cluster.",
    )
    repull_hours = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(72)],
        help_text="Every scheduled pull fetches these last hours again, for late samples.",
    )

    # The Authorization header is a secret: it is left out of the history altogether.
    history = HistoricalRecords(excluded_fields=["updated_at", "auth_header"])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Coalesce(F("cluster"), 0),
                condition=Q(is_billing=True),
                name="one_billing_metric_source_per_cluster",
                violation_error_message="Another source already bills for this cluster; "
                "untick it there first.",
            ),
            models.CheckConstraint(
                condition=Q(is_billing=False) | Q(measure__in=GPU_TIME_MEASURES),
                name="billing_source_measures_gpu_time",
                violation_error_message="Only a source of GPU time can bill.",
            ),
            models.CheckConstraint(
                condition=Q(measure__in=Measure.values), name="metric_source_measure_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            self.query()
        except ValueError as exc:
            raise ValidationError({"query_template": str(exc)}) from exc

    @property
    def measures_gpu_time(self) -> bool:
        return self.measure in GPU_TIME_MEASURES

    def query(self) -> str:
        """The PromQL this source sends."""
        return promql.render(
            self.query_template,
            filters=self.label_filters or {},
            namespace_label=self.namespace_label,
            model_label=self.model_label,
        )


class RunStatus(models.TextChoices):
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "schedule"
    GAP = "gap", "gap backfill"
    MANUAL = "manual", "by hand"


class MeteringRun(models.Model):
    """One pull of one source over one window of whole UTC hours."""

    Status = RunStatus
    Trigger = RunTrigger

    source = models.ForeignKey(MetricSource, on_delete=models.PROTECT, related_name="runs")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    queries = models.PositiveIntegerField(default=0)
    series = models.PositiveIntegerField(default=0)
    rows_written = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"
        indexes = [models.Index(fields=["source", "status", "window_start"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_end__gt=F("window_start")), name="metering_run_window_forward"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="metering_run_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.source} {self.window_start:%Y-%m-%d %H:%M} to "
            f"{self.window_end:%Y-%m-%d %H:%M} UTC"
        )

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class UsageRecord(models.Model):
    """What one source measured for one namespace and GPU model in one UTC hour.

    ``department`` is null when no department owns the namespace (*Unallocated*) and
    ``gpu_class`` when no class matches the model (*Unknown model*): never dropped.
    """

    source = models.ForeignKey(MetricSource, on_delete=models.PROTECT, related_name="usage")
    namespace = models.CharField(max_length=253, blank=True)
    gpu_model = models.CharField("GPU model", max_length=200, blank=True)
    hour_start = models.DateTimeField(help_text="Start of the UTC hour.")
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="usage"
    )
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="usage",
        help_text="The cluster its source measured (kept with the row, as the owner is).",
    )
    gpu_class = models.ForeignKey(
        GpuClass, null=True, blank=True, on_delete=models.PROTECT, related_name="usage"
    )
    quantity = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        help_text="GPU-seconds (exact: sums of them are exact), or milliseconds for a "
        "latency source.",
    )
    run = models.ForeignKey(MeteringRun, on_delete=models.PROTECT, related_name="records")

    class Meta:
        ordering = ["hour_start", "namespace", "gpu_model"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "namespace", "gpu_model", "hour_start"],
                name="one_usage_record_per_source_series_and_hour",
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=0), name="usage_quantity_not_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["source", "department", "hour_start"]),
            models.Index(fields=["source", "hour_start"]),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.namespace} {self.gpu_model} {self.hour_start:%Y-%m-%d %H:00}"

    @property
    def gpu_hours(self) -> Decimal:
        """The row's GPU-seconds as GPU-hours, rounded to what pages show."""
        return quantities.gpu_hours_shown(self.quantity)
