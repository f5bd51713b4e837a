import django_filters

from departments.models import Department, GpuClass, OffPeakWindow, Quota, ServiceLevel, Tier
from departments.selectors import departments_for_user

UNKNOWN_DEPARTMENT = {
    "invalid_choice": "No department “%(value)s” among the departments you can see."
}
UNKNOWN_GPU_CLASS = {"invalid_choice": "No GPU class “%(value)s”."}


def _visible_departments(request):
    # Filtering by a department the user may not see is refused exactly like an unknown
    # slug, so the answer tells nothing about whether it exists.
    return departments_for_user(user=request.user) if request else Department.objects.none()


class DepartmentFilter(django_filters.FilterSet):
    parent = django_filters.ModelChoiceFilter(
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Parent department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")
    namespace = django_filters.CharFilter(
        field_name="namespaces__name", help_text="A Kubernetes namespace the department owns."
    )

    class Meta:
        model = Department
        fields = ["active", "parent", "cost_centre", "name", "namespace"]


class QuotaFilter(django_filters.FilterSet):
    department = django_filters.ModelChoiceFilter(
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    gpu_class = django_filters.ModelChoiceFilter(
        queryset=GpuClass.objects.all(),
        to_field_name="slug",
        help_text="GPU class slug.",
        error_messages=UNKNOWN_GPU_CLASS,
    )

    class Meta:
        model = Quota
        fields = ["department", "kind", "enforcement", "job_kind", "gpu_class"]


class ServiceLevelFilter(django_filters.FilterSet):
    department = django_filters.ModelChoiceFilter(
        queryset=_visible_departments,
        to_field_name="slug",
        help_text="Department slug.",
        error_messages=UNKNOWN_DEPARTMENT,
    )
    tier = django_filters.ChoiceFilter(choices=Tier.choices)
    gpu_class = django_filters.ModelChoiceFilter(
        field_name="gpu_classes",
        queryset=GpuClass.objects.all(),
        to_field_name="slug",
        help_text="Service levels that may use this GPU class.",
        error_messages=UNKNOWN_GPU_CLASS,
    )

    class Meta:
        model = ServiceLevel
        fields = ["department", "tier", "gpu_class", "preemptible", "hold_for_off_peak"]


class OffPeakWindowFilter(django_filters.FilterSet):
    class Meta:
        model = OffPeakWindow
        fields = ["active"]
