"""How billing objects look in the API.

Amounts are decimal strings rounded to their currency's minor unit ("3.75", never
"3.7500"), always with ``currency`` beside them; prices per GPU-hour keep the precision
they were set with ("2.50", "2.125").
"""

import datetime as dt
from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Adjustment, LineKind, RateCard, Statement, StatementLine
from billing.pricing import price_text, round_money
from billing.selectors import statements_for_user
from core import calendar
from core.api import ModelValidationMixin, PeriodField
from departments.filters import UNKNOWN_DEPARTMENT, UNKNOWN_GPU_CLASS
from departments.models import Department, GpuClass, Tier
from departments.selectors import departments_for_user, gpu_classes_for_user
from metering.filters import VisibleSlugField
from metering.serializers import GpuHoursField, GpuSecondsField


def _currency_of(instance) -> str | None:
    if isinstance(instance, dict):
        return instance.get("currency")
    return getattr(instance, "currency", None)


class MoneyField(serializers.DecimalField):
    """A read-only amount rounded half-up to its currency's minor unit. The currency is the
    object's ``currency``, else ``currency_of(object)``, else the serializer context's
    ``currency``."""

    def __init__(self, *, currency_of=None, **kwargs):
        kwargs.setdefault("max_digits", None)
        kwargs.setdefault("decimal_places", 4)
        kwargs["read_only"] = True
        super().__init__(**kwargs)
        self.currency_of = currency_of or _currency_of

    def get_attribute(self, instance):
        value = super().get_attribute(instance)
        if value is None:
            return None
        return value, self.currency_of(instance) or self.context["currency"]

    def to_representation(self, value) -> str:
        amount, currency = value
        return f"{round_money(Decimal(amount), currency):f}"


class PriceField(serializers.DecimalField):
    """A price per GPU-hour: written with up to four decimals, shown as people write it
    (2.50, 2.125)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 4)
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return price_text(Decimal(value))


# A month, as the API reads and writes it (never a date: 2026-03-01 is refused).
MONTH_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-03"}


@extend_schema_field(MONTH_SCHEMA)
class MonthField(serializers.CharField):
    """A month written YYYY-MM: read as the first day of that month, shown as written."""

    def to_internal_value(self, data) -> dt.date:
        try:
            return calendar.month_parse(str(data).strip())
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value) -> str:
        return f"{value:%Y-%m}" if isinstance(value, dt.date) else str(value)


# --- Rate cards -----------------------------------------------------------------------------


class RateCardSerializer(ModelValidationMixin, serializers.ModelSerializer):
    gpu_class = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=GpuClass.objects.all(),
        help_text="GPU class slug.",
        error_messages={"does_not_exist": "No GPU class “{value}”."},
    )
    price_per_gpu_hour = PriceField(min_value=Decimal(0))

    class Meta:
        model = RateCard
        fields = [
            "id",
            "gpu_class",
            "tier",
            "currency",
            "price_per_gpu_hour",
            "valid_from",
            "valid_to",
            "note",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


# --- Statements -----------------------------------------------------------------------------


def _line_currency(line: StatementLine) -> str:
    # Lines come prefetched from their statement, which Django attaches to each line.
    return line.statement.currency


class StatementLineSerializer(serializers.ModelSerializer):
    """One line and how it was derived: gpu_hours × unit_price × off_peak_multiplier ×
    department_multiplier (× share for idle capacity) = amount; list_amount is the amount
    before the department multiplier. A line of portal jobs names their kind and count,
    and ``jobs_url`` lists them."""

    gpu_class = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    cluster = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="Null: a fleet of one."
    )
    job_kind = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="For portal jobs."
    )
    jobs_url = serializers.SerializerMethodField(
        help_text="For a line of portal jobs: where to list them; null otherwise."
    )
    tier = serializers.ChoiceField(
        choices=Tier.choices, allow_blank=True, read_only=True, help_text="Blank: no tier applies."
    )
    rate_card = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    gpu_hours = GpuHoursField(
        source="gpu_seconds", help_text="GPU-hours, to 0.01; gpu_seconds is exact."
    )
    gpu_seconds = GpuSecondsField()
    unit_price = PriceField(read_only=True, allow_null=True)
    list_amount = MoneyField(currency_of=_line_currency)
    amount = MoneyField(currency_of=_line_currency)
    currency = serializers.SerializerMethodField()
    adjustment = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = StatementLine
        fields = [
            "position",
            "kind",
            "description",
            "gpu_class",
            "tier",
            "namespace",
            "cluster",
            "job_kind",
            "jobs_count",
            "jobs_url",
            "rate_card",
            "gpu_hours",
            "gpu_seconds",
            "unit_price",
            "off_peak_multiplier",
            "department_multiplier",
            "share",
            "list_amount",
            "amount",
            "currency",
            "adjustment",
        ]
        read_only_fields = fields

    def get_currency(self, line: StatementLine) -> str:
        return _line_currency(line)

    def get_jobs_url(self, line: StatementLine) -> str | None:
        if line.kind != LineKind.JOBS or line.statement_id is None:
            return None
        return f"/api/v1/statements/{line.statement_id}/lines/{line.pk}/jobs/"


class LineJobSerializer(serializers.Serializer):
    """A portal job behind a line of portal jobs, and its GPU time on that line."""

    id = serializers.UUIDField(source="job.id")
    kind = serializers.CharField(source="job.kind.slug")
    kind_name = serializers.CharField(source="job.kind.name")
    submitter = serializers.CharField(source="job.submitter.username")
    tier = serializers.CharField(source="job.tier")
    gpu_class = serializers.CharField(source="job.gpu_class.slug")
    gpus = serializers.IntegerField(source="job.gpus")
    state = serializers.CharField(source="job.state")
    submitted_at = serializers.DateTimeField(source="job.submitted_at")
    started_at = serializers.DateTimeField(source="job.started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="job.finished_at", allow_null=True)
    gpu_hours = GpuHoursField(
        source="gpu_seconds", help_text="Its GPU time on this line, to 0.01 GPU-hour."
    )
    gpu_seconds = GpuSecondsField(help_text="Its GPU time on this line, exact.")


class AdjustmentSerializer(serializers.ModelSerializer):
    """A correction of a finalized statement (``original``), carried by the department's
    next open statement (``applied_to``, of month ``period``)."""

    department = serializers.SlugRelatedField(
        source="original.department", slug_field="slug", read_only=True
    )
    original_period = MonthField(
        source="original.period.label",
        read_only=True,
        help_text="The month (YYYY-MM) of the statement it corrects.",
    )
    period = MonthField(
        source="applied_to.period.label",
        read_only=True,
        help_text="The month (YYYY-MM) of the statement that carries it.",
    )
    amount = MoneyField()
    gpu_hours = GpuHoursField(source="gpu_seconds")
    gpu_seconds = GpuSecondsField()
    created_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Null: the portal, for usage metered after finalization.",
    )

    class Meta:
        model = Adjustment
        fields = [
            "id",
            "kind",
            "department",
            "original",
            "original_period",
            "applied_to",
            "period",
            "amount",
            "currency",
            "gpu_hours",
            "gpu_seconds",
            "reason",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class AdjustmentCreateSerializer(serializers.Serializer):
    """What finance gives to correct a finalized statement."""

    original = serializers.PrimaryKeyRelatedField(
        queryset=Statement.objects.none(),
        help_text="Id of the finalized statement being corrected.",
        error_messages={"does_not_exist": "No statement {pk_value}."},
    )
    amount = serializers.DecimalField(
        max_digits=16,
        decimal_places=4,
        help_text="Charged when positive, credited when negative, in whole minor units of "
        "the statement's currency (e.g. -12.50).",
    )
    reason = serializers.CharField(max_length=2000, help_text="Why: shown on both statements.")
    gpu_hours = serializers.DecimalField(
        max_digits=18,
        decimal_places=6,
        required=False,
        default=Decimal(0),
        help_text="GPU-hours the correction stands for, if any.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["original"].queryset = statements_for_user(user=request.user)


class StatementSerializer(serializers.ModelSerializer):
    period = MonthField(source="period.label", help_text="YYYY-MM.")
    department = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    department_name = serializers.CharField(source="department.name")
    cost_centre = serializers.CharField(source="department.cost_centre")
    gpu_hours = GpuHoursField(
        source="gpu_seconds", help_text="GPU-hours of its usage, to 0.01; gpu_seconds is exact."
    )
    gpu_seconds = GpuSecondsField()
    total = MoneyField()
    finalized_by = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Null on a finalized statement: finalized automatically after the grace period.",
    )

    class Meta:
        model = Statement
        fields = [
            "id",
            "period",
            "department",
            "department_name",
            "cost_centre",
            "status",
            "currency",
            "gpu_hours",
            "gpu_seconds",
            "total",
            "computed_at",
            "finalized_at",
            "finalized_by",
        ]
        read_only_fields = fields


class StatementDetailSerializer(StatementSerializer):
    lines = StatementLineSerializer(many=True, read_only=True)
    adjustments_applied = AdjustmentSerializer(
        many=True,
        read_only=True,
        help_text="Corrections of earlier finalized statements that this one carries.",
    )

    class Meta(StatementSerializer.Meta):
        fields = [*StatementSerializer.Meta.fields, "lines", "adjustments_applied"]
        read_only_fields = fields


class StatementLineRowSerializer(StatementLineSerializer):
    """A line as a row of the statement's CSV or XLSX: which statement it belongs to comes
    first, so a file detached from its name still says whose month it is."""

    statement = serializers.SerializerMethodField()
    period = serializers.SerializerMethodField(help_text="YYYY-MM.")
    department = serializers.SerializerMethodField()
    cost_centre = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta(StatementLineSerializer.Meta):
        fields = [
            "statement",
            "period",
            "department",
            "cost_centre",
            "status",
            *StatementLineSerializer.Meta.fields,
        ]
        read_only_fields = fields

    def _statement(self) -> Statement:
        return self.context["statement"]

    def get_statement(self, line: StatementLine) -> int:
        return self._statement().pk

    @extend_schema_field(MONTH_SCHEMA)
    def get_period(self, line: StatementLine) -> str:
        return self._statement().period.label

    def get_department(self, line: StatementLine) -> str:
        return self._statement().department.slug

    def get_cost_centre(self, line: StatementLine) -> str:
        return self._statement().department.cost_centre

    def get_status(self, line: StatementLine) -> str:
        return self._statement().status


# --- The chargeback report ------------------------------------------------------------------


class SlaFigureSerializer(serializers.Serializer):
    tier = serializers.CharField()
    p95 = serializers.FloatField(
        source="measured", allow_null=True, help_text="Null: nothing to measure this month."
    )
    target = serializers.FloatField(allow_null=True)
    unit = serializers.CharField(help_text="s (queue wait) or ms (latency).")
    met = serializers.BooleanField(
        allow_null=True, help_text="Null: no target, or nothing to measure this month."
    )


class ChargebackRowSerializer(serializers.Serializer):
    """One department's month (or, for finance and IT, the *Unallocated* row, whose
    department and statement are null)."""

    department = serializers.SerializerMethodField(help_text="Slug; null for Unallocated.")
    department_name = serializers.CharField(source="name")
    statement = serializers.SerializerMethodField(
        help_text="Statement id; null for a period of several months (several statements)."
    )
    status = serializers.SerializerMethodField(
        help_text="Statement status: draft while any of the period's statements is one."
    )
    spend = MoneyField()
    previous = MoneyField(
        source="previous_spend",
        allow_null=True,
        help_text="What was spent in the period before (previous_period).",
    )
    change = MoneyField(allow_null=True, help_text="spend - previous.")
    change_pct = serializers.SerializerMethodField(
        help_text='The change in percent of previous (to 0.1), "new" when previous was 0; '
        "null when both are 0."
    )
    currency = serializers.SerializerMethodField()
    gpu_hours = GpuHoursField(source="gpu_seconds")
    gpu_seconds = GpuSecondsField()
    spend_by_gpu_class = serializers.SerializerMethodField(
        help_text="Amount per GPU class name (idle capacity and adjustments under their own names)."
    )
    spend_by_cluster = serializers.SerializerMethodField(
        help_text='Usage amount per cluster slug ("" for a source of no named cluster).'
    )
    budget_gpu_hours = serializers.DecimalField(max_digits=None, decimal_places=3, allow_null=True)
    budget_used = serializers.DecimalField(
        max_digits=None, decimal_places=4, allow_null=True, help_text="GPU-hours / budget."
    )
    efficiency = serializers.DecimalField(
        max_digits=None,
        decimal_places=4,
        allow_null=True,
        help_text="Busy GPU-hours / billed GPU-hours.",
    )
    queue_wait = SlaFigureSerializer(many=True, help_text="p95 queue wait per tier (s).")
    latency = SlaFigureSerializer(many=True, help_text="p95 request latency per tier (ms).")
    sla_met = serializers.BooleanField(
        allow_null=True,
        help_text="True only when every figure with a target was measured and met; false "
        "when one was missed; null (no data) otherwise.",
    )

    def get_department(self, row) -> str | None:
        return row.department.slug if row.department else None

    def get_statement(self, row) -> int | None:
        return row.statement.pk if row.statement else None

    def get_status(self, row) -> str | None:
        return row.status

    def get_change_pct(self, row) -> str | None:
        return percent_text(row.change_pct)

    def get_currency(self, row) -> str:
        return self.context["currency"]

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_spend_by_cluster(self, row) -> dict[str, str]:
        currency = self.context["currency"]
        return {
            name: f"{round_money(amount, currency):f}"
            for name, amount in sorted(row.by_cluster.items())
        }

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_spend_by_gpu_class(self, row) -> dict[str, str]:
        currency = self.context["currency"]
        return {
            name: f"{round_money(amount, currency):f}"
            for name, amount in sorted(row.by_class.items())
        }


class UnmarkedJobsSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    cluster = serializers.CharField(allow_null=True)
    jobs = serializers.IntegerField()
    gpu_seconds = serializers.CharField()


class PoolHourSerializer(serializers.Serializer):
    """One worker pool's GPU class in one hour: allocation = jobs + idle - excess."""

    namespace = serializers.CharField()
    cluster = serializers.CharField(
        source="cluster.slug", allow_null=True, help_text="Null: the namespace in every cluster."
    )
    gpu_class = serializers.CharField(
        source="gpu_class.slug", allow_null=True, help_text="Null: an unknown GPU model."
    )
    hour_start = serializers.DateTimeField()
    allocation_seconds = GpuSecondsField()
    jobs_seconds = GpuSecondsField()
    idle_seconds = GpuSecondsField()
    excess_seconds = GpuSecondsField()
    tolerance_seconds = GpuSecondsField(
        help_text="One GPU-minute per GPU of each job attempt in the hour."
    )
    flagged = serializers.BooleanField(help_text="The excess is beyond the tolerance.")
    cause = serializers.CharField(help_text="What to check, for a flagged hour.")


def percent_text(percent) -> str | None:
    """A change in percent as the API writes it: "12.5", "-3.0", "new" or null."""
    return None if percent is None else f"{percent}"


class ChargebackReportSerializer(serializers.Serializer):
    """The period per department, with the change against the period before it.
    ``capacity_amount``, ``idle_amount`` and ``idle_absorbed`` (and the *Unallocated*
    row) are shown to finance and IT only; null for managers."""

    period = PeriodField(
        source="span", help_text="The period: YYYY-MM, YYYY-Qn, YYYY-YTD or YYYY-MM..YYYY-MM."
    )
    start_month = MonthField(source="span.start_month", help_text="Its first month, YYYY-MM.")
    end_month = MonthField(source="span.end_month", help_text="Its last month, YYYY-MM.")
    previous_period = PeriodField(
        source="previous_span",
        allow_null=True,
        help_text="The period the change is measured against: the month, quarter or N "
        "months before; for a year to date, the same months a year earlier.",
    )
    currency = serializers.CharField()
    departments_total = MoneyField()
    previous_departments_total = MoneyField(allow_null=True)
    departments_change = MoneyField(allow_null=True)
    departments_change_pct = serializers.SerializerMethodField(
        help_text='In percent of previous_departments_total; "new" when that was 0.'
    )
    capacity_amount = MoneyField(allow_null=True, help_text="What the fleet's capacity was worth.")
    idle_amount = MoneyField(allow_null=True, help_text="Capacity nobody used, valued.")
    idle_absorbed = MoneyField(
        allow_null=True, help_text="Idle capacity no department pays (absorbed by IT)."
    )
    pool_idle_amount = MoneyField(
        allow_null=True,
        help_text="The worker pools' allocation their portal jobs did not use, valued.",
    )
    flagged_pool_hours = serializers.IntegerField(
        allow_null=True,
        help_text="Pool-hours whose jobs used more than the pool's allocation beyond the "
        "tolerance: GET /api/v1/reports/pools/?flagged=true lists them with the causes.",
    )
    unmarked_jobs = UnmarkedJobsSerializer(
        many=True,
        allow_null=True,
        help_text="Portal jobs whose workers ran in a namespace that is not a marked worker "
        "pool: billed as that namespace's usage, not to their departments.",
    )
    gpu_classes = serializers.ListField(child=serializers.CharField(), source="class_names")
    clusters = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        source="cluster_names",
        help_text='The clusters the month\'s usage came from ("" for no named cluster).',
    )
    rows = ChargebackRowSerializer(many=True)

    def get_departments_change_pct(self, report) -> str | None:
        return percent_text(report.departments_change_pct)


class ChargebackQuerySerializer(serializers.Serializer):
    """What ``GET /api/v1/reports/chargeback/`` reads from its query string."""

    period = MonthField(
        required=False, help_text="The month, YYYY-MM; by default the current month."
    )

    def validate_period(self, month: dt.date) -> dt.date:
        if month > calendar.month_of(timezone.now()):
            raise serializers.ValidationError(
                f"{month:%B %Y} has not begun; there is nothing to report yet."
            )
        return month


class ChargebackReportQuerySerializer(serializers.Serializer):
    """What ``GET /api/v1/reports/chargeback/`` reads from its query string."""

    period = PeriodField(
        required=False,
        help_text="A month (YYYY-MM), a quarter (YYYY-Qn), a year to date (YYYY-YTD: January "
        "to the current month, or the whole of a past year) or a range of months "
        "(YYYY-MM..YYYY-MM, at most 36), in the portal's time zone; by default the current "
        "month. A period wholly ahead is refused.",
    )


class PoolQuerySerializer(ChargebackQuerySerializer):
    """What ``GET /api/v1/reports/pools/`` reads from its query string."""

    flagged = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: flagged hours only."
    )
    pool = serializers.RegexField(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        required=False,
        max_length=63,
        help_text="A worker pool's namespace: its hours only.",
    )


# --- Forecasts ------------------------------------------------------------------------------


class ForecastQuerySerializer(ChargebackQuerySerializer):
    """What ``GET /api/v1/forecast/`` reads from its query string. A department or GPU
    class the user may not see is refused like one that does not exist (as the usage
    endpoint does)."""

    department = VisibleSlugField(
        slug_field="slug",
        queryset=Department.objects.all(),
        visible=departments_for_user,
        unknown_message=UNKNOWN_DEPARTMENT["invalid_choice"] % {"value": "{value}"},
        required=False,
        help_text="Department slug; only that department's forecasts.",
    )
    gpu_class = VisibleSlugField(
        slug_field="slug",
        queryset=GpuClass.objects.all(),
        visible=gpu_classes_for_user,
        unknown_message=UNKNOWN_GPU_CLASS["invalid_choice"] % {"value": "{value}"},
        required=False,
        help_text="GPU class slug; only that class's forecasts.",
    )


def _float_hours(value: float | None) -> str | None:
    return None if value is None else f"{Decimal(repr(value)).quantize(Decimal('0.01'))}"


FORECAST_HEADER = [
    "month", "scope", "department", "gpu_class", "status", "reason", "days_with_data",
    "gpu_hours_to_date", "gpu_hours_expected", "gpu_hours_low", "gpu_hours_high", "currency",
    "spend_to_date", "spend_expected", "spend_low", "spend_high", "budget_gpu_hours",
    "ran_out_on", "runs_out_on",
]  # fmt: skip


class ForecastRowSerializer(serializers.Serializer):
    """One month-end forecast, flat (one CSV row)."""

    def to_representation(self, row) -> dict:
        p = row.projection

        def money(value):
            return None if value is None else f"{value:f}"

        return {
            "month": f"{row.month:%Y-%m}",
            "scope": row.scope,
            "department": row.department.slug if row.department else None,
            "gpu_class": row.gpu_class.slug if row.gpu_class else None,
            "status": "actual" if row.actual else ("forecast" if p.enough_data else "no_forecast"),
            "reason": p.reason,
            "days_with_data": p.days_with_data,
            "gpu_hours_to_date": _float_hours(p.used),
            "gpu_hours_expected": _float_hours(p.expected),
            "gpu_hours_low": None if row.actual else _float_hours(p.low),
            "gpu_hours_high": None if row.actual else _float_hours(p.high),
            "currency": row.currency,
            "spend_to_date": money(
                round_money(row.spend_to_date, row.currency)
                if row.spend_to_date is not None
                else None
            ),
            "spend_expected": money(row.spend_expected),
            "spend_low": money(row.spend_low),
            "spend_high": money(row.spend_high),
            "budget_gpu_hours": money(row.budget),
            "ran_out_on": row.ran_out_on.isoformat() if row.ran_out_on else None,
            "runs_out_on": row.runs_out_on.isoformat() if row.runs_out_on else None,
        }
