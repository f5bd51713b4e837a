from django import forms
from django.contrib.postgres.forms import SimpleArrayField

from departments.models import WEEKDAYS, OffPeakWindow, Quota


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
