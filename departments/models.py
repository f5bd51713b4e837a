"""Departments and the rules of their GPU use: namespaces, roles, GPU classes, quotas,
service levels and the organisation's off-peak hours.

Invariants that must hold whoever writes (admin, API, a shell, a migration) are database
constraints; ``clean()`` adds the checks a constraint cannot express and gives every
refusal words a person can act on.
"""

import datetime as dt
import re
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Floor
from simple_history.models import HistoricalRecords

# A Kubernetes namespace name is an RFC 1123 DNS label.
NAMESPACE_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Namespaces Kubernetes keeps for itself: the portal never claims, renders or prunes them.
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
RESERVED_NAMESPACE_PREFIX = "kube-"
# The value of the node label GPU feature discovery sets (nvidia.com/gpu.product): a
# Kubernetes label value.
LABEL_VALUE_RE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
# Celery queue prefixes: the queue is "<prefix>.<tier>".
QUEUE_PREFIX_RE = r"^[a-z0-9][a-z0-9._-]*$"
WEEKDAYS = ((0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun"))


class Tier(models.TextChoices):
    """How urgent a department's work is; each tier has its own queues."""

    REALTIME = "realtime", "Realtime"
    INTERACTIVE = "interactive", "Interactive"
    BATCH = "batch", "Batch"


class MembershipRole(models.TextChoices):
    MANAGER = "manager", "Manager"
    MEMBER = "member", "Member"


class MembershipOrigin(models.TextChoices):
    MANUAL = "manual", "Set by hand"
    PROVIDER = "provider", "From the identity provider"


class QuotaKind(models.TextChoices):
    GPU_HOURS_MONTH = "gpu_hours_month", "GPU-hours per calendar month"
    JOBS_DAY = "jobs_day", "Jobs admitted per day"
    CONCURRENT_JOBS = "concurrent_jobs", "Jobs queued or running at once"
    GPUS = "gpus", "GPUs in use at once"


class Enforcement(models.TextChoices):
    HARD_QUEUE = "hard_queue", "Hard, queue: the job waits until there is room"
    HARD_REJECT = "hard_reject", "Hard, reject: the job is refused"
    SOFT = "soft", "Soft: admitted, and an alert is raised"


def validate_prometheus_regex(value: str) -> None:
    """PromQL matches labels with RE2, which has no look-around or back-references."""
    if re.search(r"\(\?<?[=!]|\\[1-9]", value):
        raise ValidationError(
            "Prometheus regular expressions (RE2) have no look-around or back-references."
        )
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}.") from exc


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"“{value}” is not an IANA time zone (for example Europe/Berlin)."
        ) from exc


def validate_weekdays(value) -> None:
    if (
        not isinstance(value, list)
        or not value
        or any(type(day) is not int or not 0 <= day <= 6 for day in value)
        or len(set(value)) != len(value)
    ):
        raise ValidationError("Give one or more distinct weekdays, 0 (Monday) to 6 (Sunday).")


def validate_alert_thresholds(value) -> None:
    if (
        not isinstance(value, list)
        or any(type(pct) is not int or not 1 <= pct <= 1000 for pct in value)
        or value != sorted(set(value))
    ):
        raise ValidationError(
            "Give increasing whole percentages between 1 and 1000, for example 80, 100."
        )


def default_alert_thresholds() -> list[int]:
    return [80, 100]


def default_weekdays() -> list[int]:
    return [day for day, _ in WEEKDAYS]


def default_time_zone() -> str:
    return settings.TIME_ZONE


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Department(TimestampedModel):
    """A unit that uses GPUs and is charged for them."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(
        max_length=63, unique=True, help_text="Short name used in URLs and the API."
    )
    cost_centre = models.CharField(
        max_length=40,
        help_text="Finance cost centre code that this department's usage is charged to.",
    )
    billing_contact_email = models.EmailField(
        blank=True,
        help_text="The cost centre's contact: receives the department's monthly statement "
        "(with its managers).",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="Costs roll up to the parent department.",
    )
    active = models.BooleanField(
        default=True, help_text="Inactive departments keep their history but submit no new work."
    )

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=F("pk")),
                name="department_not_its_own_parent",
                violation_error_message="A department cannot be its own parent.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        # Walk the stored parents, not cached instances, so that a caller holding
        # services.department_hierarchy_lock() sees every committed change.
        ancestor_id, seen = self.parent_id, set()
        while ancestor_id is not None and ancestor_id not in seen:
            if self.pk is not None and ancestor_id == self.pk:
                raise ValidationError(
                    {"parent": f"{self.parent} is below {self.name}; the hierarchy would loop."}
                )
            seen.add(ancestor_id)
            ancestor_id = (
                Department.objects.filter(pk=ancestor_id)
                .values_list("parent_id", flat=True)
                .first()
            )


class Cluster(TimestampedModel):
    """A Kubernetes cluster of the fleet. Each has its own metric sources (its Prometheus,
    or a ``cluster`` label filter on a shared Thanos or Mimir), so its usage is kept, and
    split, apart; a namespace is claimed in one cluster or in all of them."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(
        max_length=63,
        unique=True,
        help_text="Short name used in the API and to qualify namespaces: prod-eu/dept-marketing.",
    )
    description = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


namespace_name_validator = RegexValidator(
    NAMESPACE_NAME_RE,
    "A namespace name has lower-case letters, digits and hyphens, and starts and ends with "
    "a letter or digit.",
)


def validate_not_reserved_namespace(value: str) -> None:
    """Kubernetes keeps ``default`` and the ``kube-`` namespaces for itself; the portal
    renders and prunes the namespaces departments claim, so it must never claim those."""
    if value in RESERVED_NAMESPACES or value.startswith(RESERVED_NAMESPACE_PREFIX):
        raise ValidationError(
            f"“{value}” is a namespace Kubernetes keeps for itself (default and kube-*); "
            "choose another name."
        )


def overlapping_claim(claims: models.QuerySet, *, cluster_id: int | None, pk: int | None):
    """The first of ``claims`` (rows of one namespace name, in one cluster or in all) that
    overlaps a claim in ``cluster_id`` (``None``: every cluster), other than row ``pk``."""
    claims = claims.exclude(pk=pk)
    if cluster_id is not None:
        claims = claims.filter(Q(cluster=cluster_id) | Q(cluster__isnull=True))
    return claims.select_related("cluster").first()


def namespace_label(name: str, cluster_slug: str | None) -> str:
    """How a namespace is written: ``dept-marketing`` in every cluster,
    ``prod-eu/dept-marketing`` in one."""
    return f"{cluster_slug}/{name}" if cluster_slug else name


class Namespace(models.Model):
    """A Kubernetes namespace; its GPU usage is the department's.

    Claimed in one cluster, or (``cluster`` blank) in every cluster of the fleet. A name is
    claimed either way, never both: ``ml`` in every cluster and ``prod-eu/ml`` would leave
    prod-eu's ``ml`` to two departments."""

    name = models.CharField(
        max_length=63,
        validators=[namespace_name_validator, validate_not_reserved_namespace],
    )
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="namespaces",
        help_text="Blank: the namespace of this name in every cluster.",
    )
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="namespaces")
    tier = models.CharField(
        max_length=16,
        choices=Tier.choices,
        blank=True,
        help_text="The tier of the work it runs (the virtual agent's namespace runs realtime "
        "work); its usage is priced at that tier's rate card when there is one.",
    )
    default_gpus = models.PositiveSmallIntegerField(
        "default GPUs per container",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Rendered as the namespace's LimitRange: a container that asks for no GPU "
        "gets this many of nvidia.com/gpu. Blank: no LimitRange.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "cluster__slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(name__regex=NAMESPACE_NAME_RE), name="namespace_name_is_dns_label"
            ),
            models.UniqueConstraint(
                F("name"),
                Coalesce(F("cluster"), 0),
                name="one_claim_per_namespace_and_cluster",
                violation_error_message="This namespace already belongs to another department.",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return namespace_label(self.name, self.cluster.slug if self.cluster_id else None)

    def clean(self) -> None:
        super().clean()
        if not self.name:
            return
        # A claim in every cluster and a claim in one cluster of the same name overlap.
        clash = overlapping_claim(
            Namespace.objects.filter(name=self.name).select_related("department"),
            cluster_id=self.cluster_id,
            pk=self.pk,
        )
        if clash is not None:
            raise ValidationError({"name": f"{clash.label} already belongs to {clash.department}."})


class Membership(TimestampedModel):
    """A user's role in a department: managers see and steer its usage, members submit
    jobs and see their own."""

    Role = MembershipRole

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    # Who keeps it: IT by hand, or the identity provider's groups (accounts.RoleMapping),
    # which a sign-in adds, changes and removes; a sign-in never touches a manual one.
    origin = models.CharField(
        max_length=16, choices=MembershipOrigin.choices, default=MembershipOrigin.MANUAL
    )

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["department__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "department"],
                name="one_membership_per_user_and_department",
                violation_error_message="This user already has a role in this department.",
            ),
            models.CheckConstraint(
                condition=Q(role__in=MembershipRole.values), name="membership_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(origin__in=MembershipOrigin.values), name="membership_origin_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} of {self.department}"


class GpuClass(TimestampedModel):
    """A pool of one GPU model, as Prometheus names it and as workers consume it.

    A class is whole GPUs, or a fraction of the GPUs of a whole-GPU class: a MIG profile
    (``1g.10gb`` is 1/7 of an A100) or a time-sliced replica (1/4 of a T4 shared four
    ways). A fraction has its own rate card; its GPU time counts as that fraction of its
    physical GPU for capacity and idle, so each physical GPU is counted once, whatever it
    is cut into."""

    name = models.CharField(max_length=60, unique=True)
    slug = models.SlugField(max_length=40, unique=True)
    model_regex = models.CharField(
        "Prometheus model regex",
        max_length=200,
        validators=[validate_prometheus_regex],
        help_text="Matched (whole value, like PromQL =~) against the GPU model label, "
        "for example .*A100.*",
    )
    capacity_gpus = models.PositiveIntegerField(
        "capacity (GPUs)",
        help_text="GPUs in the fleet; the hours not allocated are idle cost. 0 for a fraction "
        "of a GPU (counted in its physical class).",
    )
    physical_class = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="fractions",
        help_text="For a MIG profile or a time-sliced replica: the whole-GPU class it is cut "
        "from. Blank: whole GPUs.",
    )
    fraction_numerator = models.PositiveSmallIntegerField(
        "fraction of a GPU (numerator)",
        default=1,
        help_text="With the denominator: the share of one physical GPU, 1/7 for a 1g.10gb "
        "MIG instance of an A100, 3/7 for 3g.40gb, 1/4 for a T4 shared by four.",
    )
    fraction_denominator = models.PositiveSmallIntegerField(
        "fraction of a GPU (denominator)", default=1
    )
    mig_profile = models.CharField(
        "MIG profile",
        max_length=40,
        blank=True,
        help_text="For a MIG class: its profile (1g.10gb), matched against the pods' "
        "nvidia.com/mig-<profile> requests and the DCGM exporter's GPU_I_PROFILE.",
    )
    queue_prefix = models.CharField(
        max_length=60,
        unique=True,
        blank=True,
        validators=[
            RegexValidator(QUEUE_PREFIX_RE, "Use lower-case letters, digits, dots and hyphens.")
        ],
        help_text="Workers of this class consume the queues <prefix>.<tier>; "
        "defaults to gpu.<slug>.",
    )
    gpu_product = models.CharField(
        "GPU product (node label)",
        max_length=63,
        blank=True,
        validators=[
            RegexValidator(
                LABEL_VALUE_RE,
                "A Kubernetes label value: up to 63 letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit.",
            )
        ],
        help_text="The nvidia.com/gpu.product label GPU feature discovery puts on this "
        "class's nodes (NVIDIA-A100-SXM4-80GB; a MIG or shared class has its own, such as "
        "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb or Tesla-T4-SHARED). Kueue's ResourceFlavor for "
        "the class selects nodes by it.",
    )
    description = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        verbose_name = "GPU class"
        verbose_name_plural = "GPU classes"
        constraints = [
            models.CheckConstraint(
                condition=Q(capacity_gpus__gt=0) | Q(physical_class__isnull=False),
                name="gpu_class_capacity_positive",
                violation_error_message="A GPU class holds at least one GPU.",
            ),
            models.CheckConstraint(
                condition=Q(queue_prefix__regex=QUEUE_PREFIX_RE),
                name="gpu_class_queue_prefix_valid",
            ),
            models.CheckConstraint(
                condition=Q(fraction_numerator__gt=0)
                & Q(fraction_numerator__lte=F("fraction_denominator")),
                name="gpu_class_fraction_of_one_gpu",
                violation_error_message="A fraction of a GPU is more than 0 and at most 1.",
            ),
            models.CheckConstraint(
                condition=Q(physical_class__isnull=False)
                | (Q(fraction_numerator=1) & Q(fraction_denominator=1) & Q(mig_profile="")),
                name="gpu_class_whole_unless_cut_from_one",
                violation_error_message="A fraction or a MIG profile needs the physical GPU "
                "class it is cut from.",
            ),
            models.CheckConstraint(
                condition=~Q(physical_class=F("pk")),
                name="gpu_class_not_cut_from_itself",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.queue_prefix:
            self.queue_prefix = f"gpu.{self.slug}"
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if not self.queue_prefix and self.slug:
            self.queue_prefix = f"gpu.{self.slug}"
        if self.physical_class_id is None:
            if self.capacity_gpus is not None and self.capacity_gpus < 1:
                raise ValidationError({"capacity_gpus": "A GPU class holds at least one GPU."})
            if (self.fraction_numerator, self.fraction_denominator) != (1, 1) or self.mig_profile:
                raise ValidationError(
                    {
                        "physical_class": "A fraction or a MIG profile needs the physical GPU "
                        "class it is cut from."
                    }
                )
            return
        physical = self.physical_class
        if physical.physical_class_id is not None or (self.pk and physical.pk == self.pk):
            raise ValidationError(
                {"physical_class": f"{physical} is itself a fraction; name a whole-GPU class."}
            )
        if self.capacity_gpus:
            raise ValidationError(
                {
                    "capacity_gpus": f"A fraction of a GPU has no capacity of its own: its "
                    f"GPUs are counted in {physical}. Set 0."
                }
            )
        if not 0 < self.fraction_numerator <= self.fraction_denominator:
            raise ValidationError(
                {"fraction_numerator": "A fraction of a GPU is more than 0 and at most 1."}
            )

    @property
    def fraction(self) -> Fraction:
        """The share of one physical GPU an instance of this class holds."""
        return Fraction(self.fraction_numerator, self.fraction_denominator)

    @property
    def fraction_display(self) -> str:
        if self.physical_class_id is None:
            return "whole GPUs"
        return f"{self.fraction_numerator}/{self.fraction_denominator} of {self.physical_class}"

    def queue_for(self, tier: str) -> str:
        """The Celery queue that workers of this class consume for ``tier``."""
        return f"{self.queue_prefix}.{tier}"


class WorkerPool(TimestampedModel):
    """A namespace where the portal's own GPU workers run, in one cluster or in every one.

    Its pods' GPU allocation is not a department's usage: the GPU time of the portal jobs
    the workers ran is billed to the departments that submitted them, and the rest of the
    pool's allocation is *pool idle*, shared out by the month's idle-cost policy."""

    namespace = models.CharField(
        max_length=63,
        validators=[namespace_name_validator],
        help_text="The Kubernetes namespace of the workers' pods (the Deployments in deploy/).",
    )
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="worker_pools",
        help_text="Blank: the namespace of this name in every cluster.",
    )
    description = models.TextField(blank=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["namespace", "cluster__slug"]
        verbose_name = "worker pool"
        constraints = [
            models.CheckConstraint(
                condition=Q(namespace__regex=NAMESPACE_NAME_RE),
                name="worker_pool_namespace_is_dns_label",
            ),
            models.UniqueConstraint(
                F("namespace"),
                Coalesce(F("cluster"), 0),
                name="one_worker_pool_per_namespace_and_cluster",
                violation_error_message="This namespace is already a worker pool.",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return namespace_label(self.namespace, self.cluster.slug if self.cluster_id else None)

    def clean(self) -> None:
        super().clean()
        if not self.namespace:
            return
        clash = overlapping_claim(
            WorkerPool.objects.filter(namespace=self.namespace),
            cluster_id=self.cluster_id,
            pk=self.pk,
        )
        if clash is not None:
            raise ValidationError({"namespace": f"{clash.label} is already a worker pool."})

    def matches(self, namespace: str, cluster_id: int | None) -> bool:
        return namespace == self.namespace and self.cluster_id in (None, cluster_id)


class Quota(TimestampedModel):
    """A limit on a department's use, optionally narrowed to a job kind and a GPU class."""

    Kind = QuotaKind
    Enforcement = Enforcement

    UNITS = {
        Kind.GPU_HOURS_MONTH: "GPU-hours",
        Kind.JOBS_DAY: "jobs",
        Kind.CONCURRENT_JOBS: "jobs",
        Kind.GPUS: "GPUs",
    }
    PERIODS = {Kind.GPU_HOURS_MONTH: "month", Kind.JOBS_DAY: "day"}

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="quotas")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    job_kind = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Slug of the job kind this quota counts (for example lipsync-render); "
        "blank counts every kind.",
    )
    gpu_class = models.ForeignKey(
        GpuClass,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="quotas",
        help_text="Count only work on this GPU class; blank counts every class.",
    )
    limit = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="GPU-hours for monthly budgets; a whole number of jobs or GPUs otherwise.",
    )
    enforcement = models.CharField(
        max_length=16, choices=Enforcement.choices, default=Enforcement.HARD_QUEUE
    )
    alert_thresholds_pct = models.JSONField(
        "alert thresholds (%)",
        default=default_alert_thresholds,
        blank=True,
        validators=[validate_alert_thresholds],
        help_text="Managers are notified once per period when use reaches each percentage.",
    )

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["department__name", "kind", "job_kind", "gpu_class__name"]
        constraints = [
            models.CheckConstraint(condition=Q(limit__gt=0), name="quota_limit_positive"),
            models.CheckConstraint(
                condition=Q(kind=QuotaKind.GPU_HOURS_MONTH) | Q(limit=Floor(F("limit"))),
                name="quota_count_limit_whole",
                violation_error_message="Jobs and GPUs are counted in whole numbers.",
            ),
            models.CheckConstraint(condition=Q(kind__in=QuotaKind.values), name="quota_kind_valid"),
            models.CheckConstraint(
                condition=Q(enforcement__in=Enforcement.values), name="quota_enforcement_valid"
            ),
            models.UniqueConstraint(
                F("department"),
                F("kind"),
                F("job_kind"),
                Coalesce(F("gpu_class"), 0),
                name="one_quota_per_department_kind_and_scope",
                violation_error_message="This department already has a quota of this kind "
                "for the same job kind and GPU class.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department}: {self.get_kind_display()} ≤ {self.limit_text}"

    @property
    def unit(self) -> str:
        return self.UNITS.get(self.kind, "")

    @property
    def period(self) -> str | None:
        """The calendar period the quota resets on, in the portal's time zone; None for
        quotas on what runs at once."""
        return self.PERIODS.get(self.kind)

    @property
    def limit_display(self) -> str:
        return f"{self.limit.normalize():f}" if self.limit is not None else ""

    @property
    def limit_text(self) -> str:
        """The limit with its unit, as people write it: "1 job", "2 jobs", "0.5 GPU-hours"."""
        unit = self.unit
        if self.limit == 1 and unit.endswith("s"):
            unit = unit[:-1]
        return f"{self.limit_display} {unit}"

    # Checks of ``job_kind`` that apps above this one register (the jobs app checks that
    # the kind exists), so that departments never imports them.
    job_kind_validators: list = []

    def clean(self) -> None:
        super().clean()
        if self.job_kind:
            for validator in self.job_kind_validators:
                try:
                    validator(self.job_kind)
                except ValidationError as exc:
                    raise ValidationError({"job_kind": exc.messages}) from exc

    @property
    def scope_display(self) -> str:
        parts = [self.job_kind or "all job kinds", str(self.gpu_class or "all GPU classes")]
        return ", ".join(parts)


class ServiceLevel(TimestampedModel):
    """What a department's work of one tier is promised: priority, latency, queue wait,
    the GPU classes it may use, and whether it yields to others."""

    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="service_levels"
    )
    tier = models.CharField(max_length=16, choices=Tier.choices)
    priority = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(9)],
        help_text="0 to 9; higher runs first, waiting work is released by priority then age.",
    )
    latency_target_ms = models.PositiveIntegerField(
        "p95 latency target (ms)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Request latency the department's services must keep at the 95th percentile.",
    )
    max_queue_wait_s = models.PositiveIntegerField(
        "max queue wait (s)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Longest a job of this tier may wait before it starts.",
    )
    gpu_classes = models.ManyToManyField(
        GpuClass,
        related_name="service_levels",
        verbose_name="allowed GPU classes",
        help_text="The GPU classes this tier's work may run on.",
    )
    preemptible = models.BooleanField(
        default=False, help_text="Its running work may be stopped to make room for higher tiers."
    )
    hold_for_off_peak = models.BooleanField(
        "held for off-peak",
        default=False,
        help_text="Batch work flagged off-peak waits until an off-peak window opens.",
    )

    history = HistoricalRecords(excluded_fields=["updated_at"], m2m_fields=["gpu_classes"])

    class Meta:
        ordering = ["department__name", "-priority"]
        verbose_name = "service level"
        constraints = [
            models.UniqueConstraint(
                fields=["department", "tier"],
                name="one_service_level_per_department_and_tier",
                violation_error_message="This department already has a service level for "
                "this tier.",
            ),
            models.CheckConstraint(
                condition=Q(tier__in=Tier.values), name="service_level_tier_valid"
            ),
            models.CheckConstraint(
                condition=Q(priority__lte=9), name="service_level_priority_0_to_9"
            ),
            models.CheckConstraint(
                condition=Q(latency_target_ms__isnull=True) | Q(latency_target_ms__gt=0),
                name="service_level_latency_target_positive",
            ),
            models.CheckConstraint(
                condition=Q(max_queue_wait_s__isnull=True) | Q(max_queue_wait_s__gt=0),
                name="service_level_max_queue_wait_positive",
            ),
            models.CheckConstraint(
                condition=Q(hold_for_off_peak=False) | Q(tier=Tier.BATCH),
                name="service_level_only_batch_held_off_peak",
                violation_error_message="Only batch work can be held for the off-peak window.",
            ),
            models.CheckConstraint(
                condition=Q(preemptible=False) | ~Q(tier=Tier.REALTIME),
                name="service_level_realtime_not_preemptible",
                violation_error_message="Realtime work is never preempted.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department}: {self.get_tier_display()}"


class OffPeakWindow(TimestampedModel):
    """Hours in which GPUs are cheaper and batch work may be held for.

    A window opens on each listed weekday at ``start_time`` local time and closes at
    ``end_time``, on the next day when ``end_time`` is not after ``start_time`` (23:00 to
    07:00); equal times mean 24 hours.
    """

    name = models.CharField(max_length=80, unique=True)
    weekdays = models.JSONField(
        default=default_weekdays,
        validators=[validate_weekdays],
        help_text="Days on which the window opens, 0 (Monday) to 6 (Sunday).",
    )
    start_time = models.TimeField()
    end_time = models.TimeField()
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone]
    )
    price_multiplier = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="GPU-hours inside the window are priced at the rate times this.",
    )
    active = models.BooleanField(default=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["name"]
        verbose_name = "off-peak window"
        constraints = [
            models.CheckConstraint(
                condition=Q(price_multiplier__gt=0), name="off_peak_multiplier_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def weekdays_display(self) -> str:
        names = dict(WEEKDAYS)
        if sorted(self.weekdays) == default_weekdays():
            return "every day"
        return ", ".join(names[day] for day in sorted(self.weekdays))

    def contains(self, moment: dt.datetime) -> bool:
        """Whether the aware datetime ``moment`` falls inside this window."""
        local = moment.astimezone(ZoneInfo(self.time_zone))
        days, now = set(self.weekdays), local.time()
        weekday, day_before = local.weekday(), (local.weekday() - 1) % 7
        if self.start_time < self.end_time:
            return weekday in days and self.start_time <= now < self.end_time
        # The window runs past midnight (or all day when start equals end).
        return (weekday in days and now >= self.start_time) or (
            day_before in days and now < self.end_time
        )

    def next_opening(self, after: dt.datetime) -> dt.datetime | None:
        """When the window next opens at or after the aware datetime ``after``, in the
        window's time zone; ``None`` for a window that opens on no weekday."""
        zone = ZoneInfo(self.time_zone)
        local = after.astimezone(zone)
        for offset in range(8):  # today, and the same weekday next week at the latest
            day = local.date() + dt.timedelta(days=offset)
            if day.weekday() in self.weekdays:
                opening = dt.datetime.combine(day, self.start_time, tzinfo=zone)
                if opening >= after:
                    return opening
        return None
