from rest_framework import serializers

from metering.models import Measure


class UsageRowSerializer(serializers.Serializer):
    """One row of the usage table (``metering.selectors.usage_summary``): what one source
    measured for one department and GPU class in one period."""

    period_start = serializers.DateTimeField(
        help_text="Start of the period, in the portal's time zone."
    )
    source = serializers.CharField(help_text="Name of the metric source.")
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
        decimal_places=6,
        coerce_to_string=True,
        help_text="GPU-hours summed over the period, or for a latency source the worst "
        "hourly p95 in milliseconds.",
    )
    unit = serializers.ChoiceField(choices=Measure.choices, help_text="What quantity measures.")
