"""Forms of the billing pages: the month picker and the statements list's filters."""

import datetime as dt

from django import forms

from billing.models import StatementStatus
from core import calendar


def month_field_clean(value: str, *, latest: dt.date) -> dt.date:
    """``YYYY-MM`` as the first day of the month, no later than ``latest``; a
    ``ValidationError`` a person can act on otherwise."""
    try:
        month = calendar.month_parse(value)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from exc
    if month > latest:
        raise forms.ValidationError(
            f"{month:%Y-%m} has not begun yet, so nothing is charged for it. Pick "
            f"{latest:%Y-%m} or an earlier month."
        )
    return month


MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


def search_word_month(word: str) -> tuple[int | None, int | None] | None:
    """What one search word says of a statement's month, as ``(year, month)``: ``2026-10``
    is ``(2026, 10)``, a year such as ``2026`` is ``(2026, None)``, a month's English name
    or its first three letters or more (``Oct``, ``Sept``, ``october``, any case) is
    ``(None, 10)``. ``None`` when the word names no month or year."""
    word = word.strip(".,;").lower()
    try:
        month = calendar.month_parse(word)
    except ValueError:
        pass
    else:
        return month.year, month.month
    if len(word) == 4 and word.isdigit() and int(word) >= 2000:
        return int(word), None
    if len(word) >= 3:
        for number, name in enumerate(MONTH_NAMES, start=1):
            if name.startswith(word):
                return None, number
    return None


class StatementFilterForm(forms.Form):
    """Filters of the statements list; every field may be left empty."""

    period = forms.CharField(required=False, help_text="YYYY-MM")
    department = forms.ModelChoiceField(queryset=None, required=False, to_field_name="slug")
    status = forms.ChoiceField(choices=[("", "any"), *StatementStatus.choices], required=False)
    q = forms.CharField(
        required=False,
        max_length=200,
        help_text="Words of the department's name, slug or cost centre, or the month "
        "(2026-10, Oct 2026, October, 2026); a statement shows when every word matches.",
    )

    def __init__(self, *args, departments, latest: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].queryset = departments
        self.latest = latest

    def clean_period(self) -> dt.date | None:
        value = self.cleaned_data["period"].strip()
        return month_field_clean(value, latest=self.latest) if value else None
