"""Forms of the billing pages: the month picker and the statements list's filters."""

import datetime as dt

from django import forms

from billing import services
from billing.models import StatementStatus


def month_field_clean(value: str, *, latest: dt.date) -> dt.date:
    """``YYYY-MM`` as the first day of the month, no later than ``latest``; a
    ``ValidationError`` a person can act on otherwise."""
    try:
        month = services.month_parse(value)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from exc
    if month > latest:
        raise forms.ValidationError(
            f"{month:%Y-%m} has not begun yet, so nothing is charged for it. Pick "
            f"{latest:%Y-%m} or an earlier month."
        )
    return month


class StatementFilterForm(forms.Form):
    """Filters of the statements list; every field may be left empty."""

    period = forms.CharField(required=False, help_text="YYYY-MM")
    department = forms.ModelChoiceField(queryset=None, required=False, to_field_name="slug")
    status = forms.ChoiceField(choices=[("", "any"), *StatementStatus.choices], required=False)
    q = forms.CharField(
        required=False, max_length=200, help_text="Words in the department's name or slug."
    )

    def __init__(self, *args, departments, latest: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = departments
        self.latest = latest

    def clean_period(self) -> dt.date | None:
        value = self.cleaned_data["period"].strip()
        return month_field_clean(value, latest=self.latest) if value else None
