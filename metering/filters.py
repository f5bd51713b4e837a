"""The query parameters of the usage endpoint, validated into what
:func:`metering.selectors.usage_summary` takes.

A department the user may not see is refused with the same words as one that does not
exist (the rule and messages of :mod:`departments.filters`), so the answer tells nothing
about whether it exists.
"""

import datetime as dt

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import calendar
from core.api import PeriodField
from core.filters import moment_in_range
from departments.filters import UNKNOWN_DEPARTMENT, UNKNOWN_GPU_CLASS
from departments.models import Cluster, Department, GpuClass
from departments.selectors import departments_for_user, gpu_classes_for_user
from metering import selectors
from metering.models import MetricSource

# An hourly table is one row per hour, department and GPU class: bound it.
MAX_HOURLY_WINDOW = dt.timedelta(days=400)
ISO_8601_HINT = "Give an ISO 8601 date or date-time, e.g. 2026-10-01 or 2026-10-01T06:00:00Z."


def _drf_message(django_filter_messages: dict) -> str:
    # django-filter writes "%(value)s", DRF's fail() fills "{value}".
    return django_filter_messages["invalid_choice"] % {"value": "{value}"}


class _VisibleSlugField(serializers.SlugRelatedField):
    """A slug looked up only among the objects the requesting user may see."""

    def __init__(self, *, visible, unknown_message: str, **kwargs):
        self.visible = visible
        kwargs.setdefault("error_messages", {})["does_not_exist"] = unknown_message
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        if request is None:
            return self.queryset.none()
        return self.visible(user=request.user)


# The same refusal for other apps' queries (billing's forecast reads a department so).
VisibleSlugField = _VisibleSlugField


@extend_schema_field(OpenApiTypes.STR)
class MomentField(serializers.Field):
    """An ISO 8601 date (midnight in the portal's time zone) or date-time (an offset or Z;
    without one, the portal's time zone), as the same instant in UTC. Instants near the
    calendar's edges and offsets PostgreSQL does not take are refused
    (:func:`core.filters.moment_in_range`)."""

    default_error_messages = {"invalid": ISO_8601_HINT}

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            day = parse_date(text)
            if day is not None:
                moment = dt.datetime.combine(day, dt.time(0), tzinfo=calendar.portal_zone())
            else:
                moment = parse_datetime(text)
                if moment is None:
                    self.fail("invalid")
                if timezone.is_naive(moment):
                    moment = moment.replace(tzinfo=calendar.portal_zone())
        except (ValueError, OverflowError):
            self.fail("invalid")
        try:
            return moment_in_range(moment)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc), code="invalid") from exc

    def to_representation(self, value):
        return value.isoformat()


class UsageQuery(serializers.Serializer):
    """What ``GET /api/v1/usage/`` reads from its query string."""

    department = _VisibleSlugField(
        slug_field="slug",
        queryset=Department.objects.all(),
        visible=departments_for_user,
        unknown_message=_drf_message(UNKNOWN_DEPARTMENT),
        required=False,
        help_text="Department slug; only that department's rows.",
    )
    gpu_class = _VisibleSlugField(
        slug_field="slug",
        queryset=GpuClass.objects.all(),
        visible=gpu_classes_for_user,
        unknown_message=_drf_message(UNKNOWN_GPU_CLASS),
        required=False,
        help_text="GPU class slug; only that class's rows.",
    )
    source = serializers.SlugRelatedField(
        slug_field="name",
        queryset=MetricSource.objects.all(),
        required=False,
        error_messages={"does_not_exist": "No metric source “{value}”."},
        help_text="Metric source name (allocation, device, jobs, utilisation, latency…); "
        "default: the billing sources (one per cluster).",
    )
    cluster = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Cluster.objects.all(),
        required=False,
        error_messages={
            "does_not_exist": "No cluster “{value}”; GET /api/v1/clusters/ lists them."
        },
        help_text="Cluster slug; only that cluster's rows (every row names its cluster).",
    )
    start = MomentField(
        required=False,
        help_text="Start of the window, included: an ISO 8601 date (midnight in the portal's "
        "time zone) or date-time. Default: the start of the current month, or of the month "
        "that holds `end`.",
    )
    end = MomentField(
        required=False,
        help_text="End of the window, excluded, in the same forms as `start`. Default: the "
        "end of the current month (or of the month of `start`, when that is later).",
    )
    period = PeriodField(
        required=False,
        help_text="Instead of start and end (not with them): a month (YYYY-MM), a quarter "
        "(YYYY-Qn), a year to date (YYYY-YTD) or a range of months (YYYY-MM..YYYY-MM, at "
        "most 36), from the start of its first month to the end of its last in the portal's "
        "time zone.",
    )
    granularity = serializers.ChoiceField(
        choices=list(selectors.GRANULARITIES),
        default="day",
        error_messages={
            "invalid_choice": "“{input}” is not a granularity: give hour, day or month."
        },
        help_text="Length of each row's period: hour, or the portal's day or month.",
    )

    def validate(self, attrs):
        attrs = dict(attrs)
        source = attrs.pop("source", None)
        attrs["sources"] = [source] if source is not None else selectors.billing_sources()
        if not attrs["sources"]:
            names = ", ".join(MetricSource.objects.order_by("name").values_list("name", flat=True))
            message = (
                f"No metric source bills yet; name one of: {names}."
                if names
                else "No metric source is set up yet; IT adds them in the admin."
            )
            raise serializers.ValidationError({"source": [message]})
        period = attrs.pop("period", None)
        if period is not None:
            if "start" in attrs or "end" in attrs:
                raise serializers.ValidationError(
                    {"period": ["Give a period or a start and an end, not both."]}
                )
            attrs["start"], attrs["end"] = period.bounds()
        start, end = attrs.get("start"), attrs.get("end")
        if start is None:
            reference = end - dt.timedelta(microseconds=1) if end else timezone.now()
            start = calendar.month_bounds(reference)[0]
        if end is None:
            end = calendar.month_bounds(max(start, timezone.now()))[1]
        if end <= start:
            raise serializers.ValidationError(
                {"end": [f"The end must come after the start ({start.isoformat()})."]}
            )
        if attrs["granularity"] == "hour" and end - start > MAX_HOURLY_WINDOW:
            raise serializers.ValidationError(
                {
                    "end": [
                        f"An hourly table covers at most {MAX_HOURLY_WINDOW.days} days; "
                        "shorten the window or use granularity=day."
                    ]
                }
            )
        attrs["start"], attrs["end"] = start, end
        return attrs
