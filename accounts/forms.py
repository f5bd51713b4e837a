"""The forms of the pages people use to manage their own sign-in: their API tokens."""

from django import forms
from django.conf import settings


class ApiTokenForm(forms.Form):
    """A new personal API token: what it is for, how many days it lives, read-only or not.
    The lifetime's bounds are the settings' at the time the form is made."""

    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, to tell it apart later: e.g. nightly usage export.",
    )
    read_only = forms.BooleanField(
        label="Read-only (it may read; any change with it is refused)", required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        most = settings.API_TOKEN_MAX_DAYS
        self.fields["days"] = forms.IntegerField(
            label="Lifetime in days",
            min_value=1,
            max_value=most,
            initial=settings.API_TOKEN_DEFAULT_DAYS,
            help_text=f"1 to {most} days; it stops working after that.",
        )
        self.order_fields(["name", "days", "read_only"])
