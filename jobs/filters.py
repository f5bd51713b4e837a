import django_filters
from django.db.models import Q

from core.filters import UtcIsoDateTimeFilter
from departments.filters import UNKNOWN_DEPARTMENT, UNKNOWN_GPU_CLASS, _visible_departments
from departments.models import GpuClass, Tier
from jobs.models import GenerationJob, JobKind, JobState


class JobFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(
        choices=JobState.choices, help_text="One or more states (repeat the parameter)."
    )
    department = django_filters.ModelChoiceFilter(
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    kind = django_filters.ModelChoiceFilter(
        queryset=JobKind.objects.all(),
        to_field_name="slug",
        help_text="Job kind slug.",
        error_messages={"invalid_choice": "No job kind “%(value)s”."},
    )
    tier = django_filters.ChoiceFilter(choices=Tier.choices)
    gpu_class = django_filters.ModelChoiceFilter(
        queryset=GpuClass.objects.all(),
        to_field_name="slug",
        help_text="GPU class slug.",
        error_messages=UNKNOWN_GPU_CLASS,
    )
    submitter = django_filters.CharFilter(
        field_name="submitter__username", help_text="Username of the submitter."
    )
    submitted_after = UtcIsoDateTimeFilter(
        field_name="submitted_at",
        lookup_expr="gte",
        label="Submitted after",
        help_text="ISO 8601 date-time (a date: its midnight in the portal's time zone).",
    )
    submitted_before = UtcIsoDateTimeFilter(
        field_name="submitted_at",
        lookup_expr="lt",
        label="Submitted before",
        help_text="ISO 8601 date-time, excluded (a date: its midnight in the portal's time zone).",
    )
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        help_text="Words each found in the job's id (its start), kind, department, "
        "submitter or reason, in any case.",
    )

    class Meta:
        model = GenerationJob
        fields = ["state", "department", "kind", "tier", "gpu_class", "submitter"]

    def filter_search(self, queryset, name, value):
        for word in value.split():
            queryset = queryset.filter(
                Q(id__istartswith=word)
                | Q(kind__name__icontains=word)
                | Q(kind__slug__icontains=word)
                | Q(department__name__icontains=word)
                | Q(department__slug__icontains=word)
                | Q(submitter__username__icontains=word)
                | Q(reason__icontains=word)
            )
        return queryset


class JobKindFilter(django_filters.FilterSet):
    tier = django_filters.ChoiceFilter(
        choices=Tier.choices, method="filter_tier", help_text="Kinds that allow this tier."
    )

    class Meta:
        model = JobKind
        fields = ["active", "tier"]

    def filter_tier(self, queryset, name, value):
        return queryset.filter(pk__in=[k.pk for k in queryset if value in k.allowed_tiers])
