from decimal import Decimal

from rest_framework import serializers

from metering import quantities
from metering.models import Measure


class GpuSecondsField(serializers.DecimalField):
    """Exact GPU-seconds as a decimal string without trailing zeros: "3600", "59.5"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", None)
        kwargs.setdefault("decimal_places", 6)
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return f"{Decimal(value).normalize():f}"


class GpuHoursField(serializers.DecimalField):
    """GPU-seconds (its source) shown as GPU-hours to 0.01: "758.95"."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", None)
        kwargs.setdefault("decimal_places", 2)
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value) -> str:
        return quantities.gpu_hours_text(value)


class UsageRowSerializer(serializers.Serializer):
    """One row of the usage table (``metering.selectors.usage_summary``): what one source
    measured for one department and GPU class in one period."""

    period_start = serializers.DateTimeField(
        help_text="Start of the period, in the portal's time zone."
    )
    source = serializers.CharField(help_text="Name of the metric source.")
    cluster = serializers.CharField(
        allow_null=True, help_text="Cluster slug; null for a source of no named cluster."
    )
    cluster_name = serializers.CharField(help_text="Blank when cluster is null.")
    department = serializers.CharField(
        allow_null=True, help_text="Department slug; null for usage no department owns."
    )
    department_name = serializers.CharField(help_text="“Unallocated” when department is null.")
    gpu_class = serializers.CharField(
        allow_null=True, help_text="GPU class slug; null when no class matches the GPU model."
    )
    gpu_class_name = serializers.CharField(help_text="“Unknown model” when gpu_class is null.")
    quantity = serializers.DecimalField(
        max_digits=None,
        decimal_places=2,
        coerce_to_string=True,
        help_text="GPU-hours summed over the period, shown to 0.01 (gpu_seconds is exact), "
        "or for a latency source the worst hourly p95 in milliseconds.",
    )
    gpu_seconds = GpuSecondsField(
        allow_null=True, help_text="The exact GPU-seconds; null for a latency source."
    )
    unit = serializers.ChoiceField(choices=Measure.choices, help_text="What quantity measures.")
