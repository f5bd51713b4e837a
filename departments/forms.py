from django import forms
from django.contrib.postgres.forms import SimpleArrayField

from departments import services
from departments.models import WEEKDAYS, Department, OffPeakWindow, Quota


class DepartmentAdminForm(forms.ModelForm):
    """The admin's department form; a new parent is checked under the hierarchy lock (the
    admin runs the whole form in one transaction, so the lock holds until the save)."""

    class Meta:
        model = Department
        fields = ["name", "slug", "cost_centre", "parent", "active"]

    def clean(self):
        cleaned_data = super().clean()
        if "parent" in self.changed_data:
            services.department_hierarchy_lock()
        return cleaned_data


class QuotaForm(forms.ModelForm):
    alert_thresholds_pct = SimpleArrayField(
        forms.IntegerField(min_value=1, max_value=1000),
        required=False,
        label="Alert thresholds (%)",
        help_text="Comma-separated percentages of the limit, for example 80,100. Managers "
        "are notified once per period when use reaches each.",
    )

    class Meta:
        model = Quota
        fields = [
            "department",
            "kind",
            "limit",
            "job_kind",
            "gpu_class",
            "enforcement",
            "alert_thresholds_pct",
        ]


class QuotaInlineFormSet(forms.BaseInlineFormSet):
    """Quotas edited inline on a department: two rows for the same kind and scope are one
    error on the form, not a database error after it (the unique constraint is on an
    expression, which Django's own formset check does not see)."""

    def clean(self) -> None:
        super().clean()
        seen = set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("kind"):
                continue
            gpu_class = data.get("gpu_class")
            scope = (data["kind"], data.get("job_kind") or "", gpu_class.pk if gpu_class else None)
            if scope in seen:
                raise forms.ValidationError(
                    "Two quotas of the same kind for the same job kind and GPU class: "
                    "keep one of them.",
                    code="duplicate_quota",
                )
            seen.add(scope)


class OffPeakWindowForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text="Days on which the window opens; a window that runs past midnight ends "
        "on the next morning.",
    )

    class Meta:
        model = OffPeakWindow
        fields = [
            "name",
            "weekdays",
            "start_time",
            "end_time",
            "time_zone",
            "price_multiplier",
            "active",
        ]
