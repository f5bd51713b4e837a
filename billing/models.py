"""Prices and chargeback: rate cards, department multipliers, the monthly billing period
with its idle-cost policy, statements and their lines, and adjustments.

Money is ``Decimal`` with its currency beside it. A finalized statement and its lines never
change: ``save()``, ``delete()`` and the query sets' ``update()``/``delete()`` refuse, and
so do the admin and the API, which go through them.
"""

import datetime as dt
from decimal import Decimal

from babel.core import UnknownLocaleError
from babel.numbers import get_currency_precision, list_currencies
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.calendar import month_bounds
from departments.models import Cluster, Department, GpuClass, Quota, Tier, TimestampedModel
from jobs.models import GenerationJob, JobKind
from metering.quantities import gpu_hours_shown


class FrozenError(ValidationError):
    """Raised on any attempt to change a finalized statement or its lines."""


def validate_currency(value: str) -> None:
    try:
        known = value in list_currencies()
    except UnknownLocaleError:  # pragma: no cover - babel's data always has the root locale
        known = False
    if not known:
        raise ValidationError(f"“{value}” is not an ISO 4217 currency code (EUR, USD, JPY…).")


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency``: 0.01 for EUR, 1 for JPY, 0.001 for BHD."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def price_text(price: Decimal) -> str:
    """A price as people write it: 2.00, 2.125 (never 2.0000)."""
    cents = price.quantize(Decimal("0.01"))
    return f"{cents if cents == price else price.normalize():f}"


def default_currency() -> str:
    return settings.BILLING_CURRENCY


class IdlePolicy(models.TextChoices):
    ABSORBED = "absorbed", "Absorbed by IT"
    SHARED = "shared", "Shared in proportion to use"
    CHARGED = "charged", "Charged to one department"


class StatementStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"


class LineKind(models.TextChoices):
    USAGE = "usage", "GPU usage (namespace workloads)"
    JOBS = "jobs", "Portal jobs"
    UNALLOCATED = "unallocated", "Unallocated usage"
    POOL_IDLE = "pool_idle", "Worker pool idle"
    IDLE = "idle", "Idle capacity"
    ADJUSTMENT = "adjustment", "Adjustment"


# What a department used (and is charged for, before idle and adjustments).
USED_KINDS = (LineKind.USAGE, LineKind.JOBS)


class AdjustmentKind(models.TextChoices):
    CORRECTION = "correction", "Correction"
    LATE_USAGE = "late_usage", "Usage metered after finalization"


class Validity(models.Model):
    """``[valid_from, valid_to)``; an open end means "until further notice"."""

    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True, help_text="Blank: no end.")

    class Meta:
        abstract = True

    def covers(self, moment: dt.datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)

    def _overlapping(self, others: models.QuerySet) -> models.QuerySet:
        others = others.exclude(pk=self.pk).filter(
            Q(valid_to__isnull=True) | Q(valid_to__gt=self.valid_from)
        )
        if self.valid_to is not None:
            others = others.filter(valid_from__lt=self.valid_to)
        return others

    def clean(self) -> None:
        super().clean()
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValidationError({"valid_to": "The end must come after the start."})


class RateCard(Validity, TimestampedModel):
    """The price of one GPU-hour of a GPU class, for every tier or for one, over a span of
    time. A price change is a new card that starts when the old one ends."""

    gpu_class = models.ForeignKey(GpuClass, on_delete=models.PROTECT, related_name="rate_cards")
    tier = models.CharField(
        max_length=16,
        choices=Tier.choices,
        blank=True,
        help_text="Blank: every tier without a card of its own. A namespace's tier says "
        "which card prices its usage.",
    )
    currency = models.CharField(
        max_length=3, default=default_currency, validators=[validate_currency]
    )
    price_per_gpu_hour = models.DecimalField(
        "price per GPU-hour",
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(Decimal(0))],
    )
    note = models.CharField(max_length=200, blank=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["gpu_class__name", "tier", "-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="rate_card_valid_forward",
                violation_error_message="The end must come after the start.",
            ),
            models.CheckConstraint(
                condition=Q(price_per_gpu_hour__gte=0), name="rate_card_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        tier = f" {self.get_tier_display().lower()}" if self.tier else ""
        price = price_text(self.price_per_gpu_hour)
        return (
            f"{self.gpu_class}{tier} {price} {self.currency}/GPU-hour "
            f"from {self.valid_from:%Y-%m-%d %H:%M}"
        )

    def clean(self) -> None:
        super().clean()
        if self.gpu_class_id is None or self.valid_from is None:
            return
        clash = self._overlapping(
            RateCard.objects.filter(gpu_class_id=self.gpu_class_id, tier=self.tier)
        ).first()
        if clash is not None:
            raise ValidationError(
                f"It overlaps “{clash}”: one card prices a GPU class and tier at a time. "
                "End that card before this one starts."
            )
        if self.currency and self.currency != settings.BILLING_CURRENCY:
            raise ValidationError(
                {
                    "currency": f"Statements are kept in {settings.BILLING_CURRENCY} "
                    "(BILLING_CURRENCY); a card in another currency could not be added to them."
                }
            )
        self._clean_finalized_use()

    # What a card says about the hours it prices. Once a finalized month used it, these stay:
    # the statements keep their own copy, but the month's Unallocated, idle capacity and
    # capacity value would move away from them and the month would no longer reconcile.
    PRICING_FIELDS = ("gpu_class", "tier", "currency", "price_per_gpu_hour", "valid_from")

    def _clean_finalized_use(self) -> None:
        """Refuses a change to what the card priced a finalized month with: a pricing
        field, or an end that would move over hours of such a month. Only what changes
        is held against the finalized months, so a card that ends inside one keeps its end
        and still takes a new note."""
        stored = RateCard.objects.filter(pk=self.pk).first() if self.pk else None
        if stored is None:
            return

        finalized = [
            (month, *month_bounds(month))
            for month in Statement.objects.filter(status=StatementStatus.FINALIZED)
            .order_by("period__month")
            .values_list("period__month", flat=True)
            .distinct()
        ]
        used = [
            (month, end)
            for month, start, end in finalized
            if start < (stored.valid_to or end) and end > stored.valid_from
        ]
        changed = [
            name
            for name in self.PRICING_FIELDS
            if getattr(self, self._meta.get_field(name).attname)
            != getattr(stored, self._meta.get_field(name).attname)
        ]
        if used and changed:
            last_month, _ = max(used)
            raise ValidationError(
                {
                    name: f"This card priced {last_month:%B %Y}, which is finalized: its "
                    f"{self._meta.get_field(name).verbose_name} stays as it was. For a new "
                    "price, end this card and add one that starts where it ends."
                    for name in changed
                }
            )
        if self.valid_to != stored.valid_to:
            self._clean_end_move(stored.valid_to, finalized)

    def _clean_end_move(
        self, old_end: dt.datetime | None, finalized: list[tuple[dt.date, dt.datetime, dt.datetime]]
    ) -> None:
        """The hours between the old end and the new one change hands (priced by this card
        or not): none of them may fall in a finalized month."""
        new_end = self.valid_to
        earlier = new_end is not None and (old_end is None or new_end < old_end)
        low, high = (new_end, old_end) if earlier else (old_end, new_end)
        moved = [
            (month, start, end)
            for month, start, end in finalized
            if end > low and (high is None or start < high)
        ]
        if not moved:
            return
        if earlier:
            month, _, end = moved[-1]
            limit = end if old_end is None else min(end, old_end)
            message = (
                f"This card priced {month:%B %Y}, which is finalized: it cannot end before "
                f"{timezone.localtime(limit):%Y-%m-%d %H:%M %Z}."
            )
        else:
            month, start, _ = moved[0]
            limit = max(start, old_end)
            message = (
                f"{month:%B %Y} is finalized: this card cannot end after "
                f"{timezone.localtime(limit):%Y-%m-%d %H:%M %Z}."
            )
        raise ValidationError({"valid_to": message})


class DepartmentMultiplier(Validity, TimestampedModel):
    """A discount or surcharge on everything a department is charged (0.8 = 20 % off)."""

    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="price_multipliers"
    )
    multiplier = models.DecimalField(
        max_digits=6, decimal_places=3, validators=[MinValueValidator(Decimal(0))]
    )
    reason = models.CharField(max_length=200)

    history = HistoricalRecords(excluded_fields=["updated_at"])

    class Meta:
        ordering = ["department__name", "-valid_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=F("valid_from")),
                name="department_multiplier_valid_forward",
                violation_error_message="The end must come after the start.",
            ),
            models.CheckConstraint(
                condition=Q(multiplier__gte=0), name="department_multiplier_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department} ×{self.multiplier} from {self.valid_from:%Y-%m-%d}"

    def clean(self) -> None:
        super().clean()
        if self.department_id is None or self.valid_from is None:
            return
        clash = self._overlapping(
            DepartmentMultiplier.objects.filter(department_id=self.department_id)
        ).first()
        if clash is not None:
            raise ValidationError(
                f"It overlaps “{clash}”: a department has one multiplier at a time."
            )


class BillingPeriod(TimestampedModel):
    """A calendar month in the portal's time zone: its idle-cost policy and the figures
    that reconcile it (what the fleet's capacity is worth, what went unallocated, what
    stood idle)."""

    month = models.DateField(unique=True, help_text="The first day of the month.")
    currency = models.CharField(max_length=3, default=default_currency)
    idle_policy = models.CharField(
        max_length=10, choices=IdlePolicy.choices, default=IdlePolicy.ABSORBED
    )
    idle_department = models.ForeignKey(
        Department,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The department that pays for idle capacity when the policy charges one.",
    )
    computed_at = models.DateTimeField(null=True, blank=True)
    inputs_version = models.CharField(max_length=64, blank=True, editable=False)
    # GPU time in GPU-seconds (exact); the *_gpu_hours properties show it in GPU-hours.
    capacity_gpu_seconds = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    capacity_amount = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    unallocated_gpu_seconds = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    unallocated_amount = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    pool_idle_gpu_seconds = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    pool_idle_amount = models.DecimalField(
        max_digits=16,
        decimal_places=4,
        default=0,
        help_text="What the worker pools' allocation not used by portal jobs was worth.",
    )
    idle_gpu_seconds = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    idle_amount = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    unpriced_gpu_seconds = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        default=0,
        help_text="Usage no rate card priced (no card valid then, or an unknown GPU model).",
    )

    unmarked_jobs = models.JSONField(
        default=list,
        blank=True,
        help_text="Portal jobs whose workers ran in a namespace that is not a marked worker "
        "pool (billed as that namespace's usage): namespace, cluster, jobs, GPU-seconds.",
    )

    # What a refresh computes (billing.services.period_refresh); never edited by hand.
    FIGURES = (
        "capacity_gpu_seconds",
        "capacity_amount",
        "unallocated_gpu_seconds",
        "unallocated_amount",
        "pool_idle_gpu_seconds",
        "pool_idle_amount",
        "unmarked_jobs",
        "idle_gpu_seconds",
        "idle_amount",
        "unpriced_gpu_seconds",
    )
    # Who chose the idle-cost policy, and when; the figures are recomputed from the ledger
    # (and saved without a version: :func:`billing.services.period_refresh`).
    history = HistoricalRecords(
        excluded_fields=[*FIGURES, "computed_at", "inputs_version", "updated_at"]
    )

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(idle_policy=IdlePolicy.CHARGED) | Q(idle_department__isnull=False),
                name="charged_idle_policy_names_a_department",
                violation_error_message="Name the department that is charged for idle capacity.",
            ),
            models.CheckConstraint(
                condition=Q(idle_policy__in=IdlePolicy.values), name="idle_policy_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month:%B %Y}"

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"

    @property
    def capacity_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.capacity_gpu_seconds)

    @property
    def unallocated_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.unallocated_gpu_seconds)

    @property
    def pool_idle_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.pool_idle_gpu_seconds)

    @property
    def idle_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.idle_gpu_seconds)

    @property
    def idle_share(self) -> Decimal | None:
        """The share of the fleet's capacity so far that nothing used (0 to 1), unrounded (a
        page rounds it once, as it shows it); ``None`` before any capacity is counted."""
        if not self.capacity_gpu_seconds:
            return None
        return Decimal(self.idle_gpu_seconds) / Decimal(self.capacity_gpu_seconds)

    @property
    def unpriced_gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.unpriced_gpu_seconds)

    def clean(self) -> None:
        super().clean()
        if self.month and self.month.day != 1:
            raise ValidationError({"month": "A period starts on the first day of a month."})
        if self.idle_policy == IdlePolicy.CHARGED and self.idle_department_id is None:
            raise ValidationError(
                {"idle_department": "Name the department that is charged for idle capacity."}
            )
        if self.pk and self.statements.filter(status=StatementStatus.FINALIZED).exists():
            saved = BillingPeriod.objects.get(pk=self.pk)
            if (saved.idle_policy, saved.idle_department_id) != (
                self.idle_policy,
                self.idle_department_id,
            ):
                raise ValidationError(
                    "A statement of this month is finalized with the idle-cost policy it "
                    "used; the policy can no longer change."
                )


class FrozenQuerySet(models.QuerySet):
    """Bulk ``update()`` and ``delete()`` that refuse to touch finalized rows."""

    frozen = Q()  # set by each model's query set: which rows are finalized

    def _refuse_frozen(self) -> None:
        if self.filter(self.frozen).exists():
            raise FrozenError("A finalized statement never changes.")

    def update(self, **kwargs):
        self._refuse_frozen()
        return super().update(**kwargs)

    def delete(self):
        self._refuse_frozen()
        return super().delete()


class StatementQuerySet(FrozenQuerySet):
    frozen = Q(status=StatementStatus.FINALIZED)


class StatementLineQuerySet(FrozenQuerySet):
    frozen = Q(statement__status=StatementStatus.FINALIZED)


class Statement(TimestampedModel):
    """What one department is charged for one month. A draft follows the ledger; a
    finalized statement keeps the lines, rates and policy it was finalized with."""

    Status = StatementStatus

    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="statements")
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="statements")
    status = models.CharField(
        max_length=10, choices=StatementStatus.choices, default=StatementStatus.DRAFT
    )
    currency = models.CharField(max_length=3, default=default_currency)
    gpu_seconds = models.DecimalField(
        "GPU-seconds",
        max_digits=18,
        decimal_places=6,
        default=0,
        help_text="GPU time of its usage lines (exact); shown as GPU-hours.",
    )
    total = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    computed_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Blank on a finalized statement: finalized automatically after the grace period.",
    )
    pricing = models.JSONField(
        default=dict,
        blank=True,
        help_text="The rate cards, multipliers, off-peak windows and idle-cost policy it was "
        "finalized with.",
    )

    history = HistoricalRecords(excluded_fields=["updated_at"])

    objects = StatementQuerySet.as_manager()

    class Meta:
        ordering = ["-period__month", "department__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "department"], name="one_statement_per_department_and_month"
            ),
            models.CheckConstraint(
                condition=Q(status__in=StatementStatus.values), name="statement_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status=StatementStatus.DRAFT) | Q(finalized_at__isnull=False),
                name="finalized_statement_has_a_time",
            ),
        ]
        permissions = [("finalize_statement", "Can finalize a statement")]

    def __str__(self) -> str:
        return f"{self.department} · {self.period}"

    @property
    def is_finalized(self) -> bool:
        return self.status == StatementStatus.FINALIZED

    @property
    def gpu_hours(self) -> Decimal:
        """GPU-hours of its usage, rounded to what pages and exports show."""
        return gpu_hours_shown(self.gpu_seconds)

    def _stored_status(self) -> str | None:
        if self.pk is None:
            return None
        return Statement.objects.filter(pk=self.pk).values_list("status", flat=True).first()

    def save(self, *args, **kwargs):
        if self._stored_status() == StatementStatus.FINALIZED:
            raise FrozenError(f"The statement {self} is finalized; it never changes.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._stored_status() == StatementStatus.FINALIZED:
            raise FrozenError(f"The statement {self} is finalized; it cannot be deleted.")
        return super().delete(*args, **kwargs)


class StatementLine(models.Model):
    """One priced figure and how it was derived: GPU-hours × price × off-peak multiplier
    × department multiplier (× share, for idle capacity), rounded half-up to the
    currency's minor unit.

    A line of the period that no department pays (*Unallocated* usage, idle capacity
    absorbed by IT) has no statement."""

    Kind = LineKind

    period = models.ForeignKey(BillingPeriod, on_delete=models.CASCADE, related_name="lines")
    statement = models.ForeignKey(
        Statement, null=True, blank=True, on_delete=models.CASCADE, related_name="lines"
    )
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    namespace = models.CharField(max_length=253, blank=True)
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The cluster the GPU time was used in; blank for a fleet of one cluster.",
    )
    gpu_class = models.ForeignKey(
        GpuClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    tier = models.CharField(max_length=16, choices=Tier.choices, blank=True)
    job_kind = models.ForeignKey(
        JobKind,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="For a line of portal jobs: their kind.",
    )
    jobs_count = models.PositiveIntegerField(
        default=0, help_text="For a line of portal jobs: how many jobs it charges."
    )
    rate_card = models.ForeignKey(
        RateCard, null=True, blank=True, on_delete=models.PROTECT, related_name="lines"
    )
    gpu_seconds = models.DecimalField("GPU-seconds", max_digits=18, decimal_places=6, default=0)
    unit_price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    off_peak_multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=1)
    department_multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=1)
    share = models.DecimalField(
        max_digits=12,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="The department's part of the idle capacity, when it is shared.",
    )
    list_amount = models.DecimalField(
        max_digits=16,
        decimal_places=4,
        default=0,
        help_text="The amount before the department's multiplier.",
    )
    amount = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    description = models.CharField(max_length=300)
    adjustment = models.ForeignKey(
        "Adjustment", null=True, blank=True, on_delete=models.PROTECT, related_name="lines"
    )
    position = models.PositiveIntegerField(default=0)

    objects = StatementLineQuerySet.as_manager()

    class Meta:
        ordering = ["statement_id", "position", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=LineKind.values), name="statement_line_kind_valid"
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=USED_KINDS) | Q(statement__isnull=False),
                name="usage_line_belongs_to_a_statement",
            ),
        ]
        indexes = [models.Index(fields=["period", "kind"])]

    def __str__(self) -> str:
        return self.description

    def save(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError("A line of a finalized statement never changes.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError("A line of a finalized statement cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.gpu_seconds)

    def _frozen(self) -> bool:
        return self.statement_id is not None and (
            Statement.objects.filter(pk=self.statement_id, status=StatementStatus.FINALIZED)
            .only("pk")
            .exists()
        )


class StatementLineJob(models.Model):
    """A portal job behind a line of portal jobs, with the GPU time of it on that line:
    the jobs a line charges can be listed from it. Written and frozen with its line."""

    line = models.ForeignKey(StatementLine, on_delete=models.CASCADE, related_name="jobs")
    job = models.ForeignKey(GenerationJob, on_delete=models.PROTECT, related_name="+")
    gpu_seconds = models.DecimalField("GPU-seconds", max_digits=14, decimal_places=3)

    class Meta:
        ordering = ["line_id", "job_id"]
        constraints = [
            models.UniqueConstraint(fields=["line", "job"], name="one_row_per_line_and_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} on line {self.line_id}"

    def save(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError("The jobs of a finalized statement's line never change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError("The jobs of a finalized statement's line cannot be deleted.")
        return super().delete(*args, **kwargs)

    @property
    def gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.gpu_seconds)

    def _frozen(self) -> bool:
        return StatementLine.objects.filter(
            pk=self.line_id, statement__status=StatementStatus.FINALIZED
        ).exists()


class WorkerPoolHour(models.Model):
    """One worker pool's GPU class in one hour of a month, as the month was last priced:
    its pods' allocation, its jobs' GPU time, the pool idle rest, and the jobs' excess over
    the allocation, flagged when beyond the tolerance (one GPU-minute per GPU of each job
    attempt in the hour). ``allocation = jobs + idle - excess``."""

    period = models.ForeignKey(BillingPeriod, on_delete=models.CASCADE, related_name="pool_hours")
    namespace = models.CharField(max_length=63)
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    gpu_class = models.ForeignKey(
        GpuClass, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    hour_start = models.DateTimeField()
    allocation_seconds = models.DecimalField(max_digits=14, decimal_places=6)
    jobs_seconds = models.DecimalField(max_digits=14, decimal_places=6)
    idle_seconds = models.DecimalField(max_digits=14, decimal_places=6)
    excess_seconds = models.DecimalField(max_digits=14, decimal_places=6)
    tolerance_seconds = models.DecimalField(max_digits=14, decimal_places=6)
    flagged = models.BooleanField(default=False)

    class Meta:
        ordering = ["period", "namespace", "cluster_id", "gpu_class_id", "hour_start"]
        indexes = [models.Index(fields=["period", "flagged"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    allocation_seconds=F("jobs_seconds") + F("idle_seconds") - F("excess_seconds")
                ),
                name="worker_pool_hour_adds_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.namespace} {self.hour_start:%Y-%m-%d %H:00}"

    CAUSES = (
        "a worker pod that Prometheus did not scrape (kube-state-metrics missed its GPU request)",
        "a worker running in a namespace that is not marked as a worker pool, or in "
        "another cluster than its JOBS_WORKER_CLUSTER says",
    )

    @property
    def cause(self) -> str:
        """What to check when the pool-hour is flagged."""
        if not self.flagged:
            return ""
        return (
            f"Jobs used {gpu_hours_shown(self.jobs_seconds)} GPU-hours but the pool's pods "
            f"were allocated {gpu_hours_shown(self.allocation_seconds)}: check for "
            + "; or ".join(self.CAUSES)
            + ". The jobs are billed; nothing is billed twice."
        )


class Adjustment(models.Model):
    """A correction of a finalized statement, or usage metered after it was finalized,
    charged on the department's next open statement and pointing at the original."""

    Kind = AdjustmentKind

    original = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="adjustments")
    applied_to = models.ForeignKey(
        Statement,
        on_delete=models.PROTECT,
        related_name="adjustments_applied",
        help_text="The open statement that carries it.",
    )
    kind = models.CharField(max_length=12, choices=AdjustmentKind.choices)
    amount = models.DecimalField(max_digits=16, decimal_places=4)
    currency = models.CharField(max_length=3, default=default_currency)
    gpu_seconds = models.DecimalField("GPU-seconds", max_digits=18, decimal_places=6, default=0)
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Blank: the portal, for usage metered after finalization.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=AdjustmentKind.values), name="adjustment_kind_valid"
            ),
            models.CheckConstraint(
                condition=~Q(original=F("applied_to")),
                name="adjustment_lands_on_another_statement",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.original}: {self.amount} {self.currency}"

    @property
    def gpu_hours(self) -> Decimal:
        return gpu_hours_shown(self.gpu_seconds)


class ForecastAlert(models.Model):
    """A monthly GPU-hour budget's threshold that the month-end *forecast* crossed before
    use did: the department's managers hear of it once per quota, month and threshold
    (the unique constraint)."""

    quota = models.ForeignKey(Quota, on_delete=models.CASCADE, related_name="forecast_alerts")
    period = models.CharField(max_length=7, help_text="The month, YYYY-MM.")
    threshold_pct = models.PositiveSmallIntegerField("threshold (%)")
    expected_gpu_hours = models.DecimalField(max_digits=14, decimal_places=3)
    low_gpu_hours = models.DecimalField(max_digits=14, decimal_places=3)
    high_gpu_hours = models.DecimalField(max_digits=14, decimal_places=3)
    used_gpu_hours = models.DecimalField(max_digits=14, decimal_places=3)
    limit = models.DecimalField(max_digits=12, decimal_places=3)
    runs_out_on = models.DateField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["quota", "period", "threshold_pct"],
                name="one_forecast_alert_per_quota_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota}: forecast past {self.threshold_pct} % in {self.period}"


class SpendAnomaly(models.Model):
    """A department's day whose spend lay far outside its recent days
    (:mod:`billing.anomalies`); recorded, and its managers told, once per department and
    day."""

    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="spend_anomalies"
    )
    day = models.DateField(help_text="The portal day.")
    amount = models.DecimalField(max_digits=16, decimal_places=4)
    usual = models.DecimalField(
        max_digits=16, decimal_places=4, help_text="The median of the days before it."
    )
    currency = models.CharField(max_length=3, default=default_currency)
    recipients = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-day"]
        verbose_name_plural = "spend anomalies"
        constraints = [
            models.UniqueConstraint(
                fields=["department", "day"], name="one_spend_anomaly_per_department_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department}: {self.amount} {self.currency} on {self.day}"


# The channels, deliveries and sendings of alerts and statements live in their own module.
from billing.notifications_models import (  # noqa: E402, F401
    AlertChannel,
    ChannelKind,
    Delivery,
    SendingKind,
    SendingStatus,
    StatementSending,
    WebhookPreset,
)
