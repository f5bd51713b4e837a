"""Query filters of the billing endpoints.

A department the user may not see is refused with the same words as one that does not
exist (the rule of :mod:`departments.filters`), so the answer tells nothing about whether
it exists.
"""

import django_filters
from django import forms
from django.db.models import QuerySet

from billing.models import Adjustment, AdjustmentKind, RateCard, Statement, StatementStatus
from core import calendar
from core.filters import LATEST, UtcIsoDateTimeFilter
from departments.filters import UNKNOWN_DEPARTMENT, UNKNOWN_GPU_CLASS, _visible_departments
from departments.models import GpuClass, Tier


class MonthFormField(forms.CharField):
    """``YYYY-MM`` as the first day of that month, with the words of
    :func:`billing.calendar.month_parse` when it is not one."""

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return None
        try:
            month = calendar.month_parse(value.strip())
        except ValueError as exc:
            # Passed as a parameter: django-filter %-formats the message, and the reason
            # quotes the input, which may hold a "%".
            raise forms.ValidationError("%(reason)s", params={"reason": str(exc)}) from exc
        if month >= LATEST.date():
            # The month after it, which reading it computes, may be past what a date holds.
            raise forms.ValidationError(
                "%(month)s is too far ahead: give a month up to %(last)s.",
                params={"month": f"{month:%Y-%m}", "last": f"{LATEST.year - 1}-12"},
            )
        return month


class MonthFilter(django_filters.Filter):
    field_class = MonthFormField


class StatementFilter(django_filters.FilterSet):
    period = MonthFilter(field_name="period__month", help_text="The month, YYYY-MM.")
    department = django_filters.ModelChoiceFilter(
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    status = django_filters.ChoiceFilter(choices=StatementStatus.choices)

    class Meta:
        model = Statement
        fields = ["period", "department", "status"]


class AdjustmentFilter(django_filters.FilterSet):
    period = MonthFilter(
        field_name="applied_to__period__month",
        help_text="The month (YYYY-MM) of the statement that carries the adjustment.",
    )
    department = django_filters.ModelChoiceFilter(
        field_name="original__department",
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    original = django_filters.NumberFilter(help_text="Id of the corrected statement.")
    kind = django_filters.ChoiceFilter(choices=AdjustmentKind.choices)

    class Meta:
        model = Adjustment
        fields = ["period", "department", "original", "kind"]


class RateCardFilter(django_filters.FilterSet):
    gpu_class = django_filters.ModelChoiceFilter(
        queryset=GpuClass.objects.all(),
        to_field_name="slug",
        help_text="GPU class slug.",
        error_messages=UNKNOWN_GPU_CLASS,
    )
    tier = django_filters.ChoiceFilter(
        choices=Tier.choices, help_text="Cards of this tier's own (not the every-tier cards)."
    )
    valid_at = UtcIsoDateTimeFilter(
        method="filter_valid_at", help_text="ISO 8601 date-time: the cards in force then."
    )

    class Meta:
        model = RateCard
        fields = ["gpu_class", "tier", "currency", "valid_at"]

    def filter_valid_at(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(valid_from__lte=value).exclude(valid_to__lte=value)
