"""Forms of the job pages: what to run (department, kind, tier), the parameter fields built
from a kind's JSON schema, and the options of one submission.

The forms only shape what the browser sends; the rules stay in :mod:`jobs.argv` and
:mod:`jobs.services`, whose errors the views put back next to the right field.
"""

import uuid

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError

from departments.models import ServiceLevel, Tier
from jobs import selectors, services

# A string parameter longer than this gets a text area instead of a one-line input.
TEXTAREA_FROM_LENGTH = 200
_COERCE = {"string": str, "integer": int, "number": float, "boolean": bool}


class JobChoiceForm(forms.Form):
    """Step 1: the department (one the user may submit for), the kind and the tier.

    The tier select offers the tiers the user's departments have service levels for;
    :attr:`tier_rules` says which of them each department has and each kind allows, so
    that the page's script (static/portal/submit.js) can narrow the choice to the chosen
    department and kind. Valid only when the service would take the choice, whatever the
    parameters: the kind is active and allows the tier, and the department has a service
    level for it.
    """

    department = forms.ModelChoiceField(
        queryset=None, to_field_name="slug", empty_label=None, label="Department"
    )
    kind = forms.ModelChoiceField(
        queryset=None, to_field_name="slug", empty_label=None, label="Job kind"
    )
    tier = forms.ChoiceField(choices=Tier.choices, initial=Tier.BATCH, label="Tier")

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["department"].queryset = selectors.submit_departments_for_user(user=user)
        self.fields["kind"].queryset = selectors.job_kinds_for_user(user=user, active_only=True)
        self.service_level: ServiceLevel | None = None
        self.tier_rules = self._tier_rules()
        offered = {
            tier for rules in self.tier_rules["departments"].values() for tier in rules["tiers"]
        }
        # Only the select narrows: any tier still validates here, so that a tier the
        # chosen department lacks is refused by the service, with its reason ("Marketing
        # has no service level for realtime work."). No tier at all: all are shown, and
        # the service says why none fits.
        self.fields["tier"].widget.choices = [
            (value, label) for value, label in Tier.choices if value in offered
        ] or Tier.choices
        if not self.is_bound and "tier" not in self.initial:
            self.initial["tier"] = self._default_tier()

    def _tier_rules(self) -> dict:
        """``{"departments": {slug: {"tiers": [...], "default": tier or None}}, "kinds":
        {slug: [allowed tiers]}}``, tiers in :class:`Tier`'s order, defaults as
        :func:`jobs.selectors.default_tier` picks them."""
        departments = list(self.fields["department"].queryset)
        held = set(
            ServiceLevel.objects.filter(department__in=departments).values_list(
                "department_id", "tier"
            )
        )
        return {
            "departments": {
                department.slug: {
                    "tiers": [tier for tier in Tier.values if (department.pk, tier) in held],
                    "default": selectors.default_tier(department=department),
                }
                for department in departments
            },
            "kinds": {
                kind.slug: [tier for tier in Tier.values if tier in kind.allowed_tiers]
                for kind in self.fields["kind"].queryset
            },
        }

    def _default_tier(self) -> str:
        """The tier the department shown first favours (see
        :func:`jobs.selectors.default_tier`)."""
        departments = self.tier_rules["departments"]
        slug = self.initial.get("department")
        if slug not in departments:
            slug = next(iter(departments), None)
        tier = slug and departments[slug]["default"]
        return tier or Tier.BATCH

    def clean(self):
        cleaned = super().clean()
        department, kind, tier = (cleaned.get(name) for name in ("department", "kind", "tier"))
        if department is None or kind is None or not tier:
            return cleaned
        try:
            # No parameters at all: the service then stops at the parameters, after
            # checking everything else, and never renders the command.
            services.job_validate(
                department=department, kind=kind, params=None, tier=tier, user=self.user
            )
        except PermissionDenied as exc:
            self.add_error("department", str(exc))
        except ValidationError as exc:
            # Parameters are step 2's business; anything else is this choice's.
            for field, messages in exc.message_dict.items():
                if field != "params":
                    self.add_error(field if field in self.fields else None, messages)
        if not self.errors:
            self.service_level = (
                ServiceLevel.objects.filter(department=department, tier=tier)
                .prefetch_related("gpu_classes")
                .get()
            )
        return cleaned


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def schema_field(name: str, spec: dict, *, required: bool) -> forms.Field:
    """The form field of one parameter: its type, bounds, enum, title, description and
    default (see :func:`jobs.argv.validate_params_schema` for the shapes a schema may take)."""
    kind = spec.get("type")
    common = {
        "label": spec.get("title") or _label(name),
        "help_text": spec.get("description", ""),
        "required": required,
    }
    if "default" in spec:
        common["initial"] = spec["default"]
    if kind == "boolean":
        # An unticked box is false, which is a value: never "missing".
        return forms.BooleanField(**{**common, "required": False})
    if "enum" in spec:
        coerce = _COERCE[kind]
        choices = [(value, str(value)) for value in spec["enum"]]
        if not required:
            choices.insert(0, ("", "—"))
        return forms.TypedChoiceField(choices=choices, coerce=coerce, empty_value=None, **common)
    if kind == "integer":
        return forms.IntegerField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "number":
        return forms.FloatField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    max_length = spec.get("maxLength")
    widget = (
        forms.Textarea(attrs={"rows": 4})
        if max_length is not None and max_length > TEXTAREA_FROM_LENGTH
        else None
    )
    return forms.CharField(
        min_length=spec.get("minLength"), max_length=max_length, widget=widget, **common
    )


class JobParamsForm(forms.Form):
    """Step 2: one field per parameter of ``schema``, in the schema's order.

    :meth:`params` gives what to submit: a field left empty is left out, so the schema's
    default (or its "required" rule) applies.
    """

    def __init__(self, *args, schema: dict, **kwargs):
        kwargs.setdefault("prefix", "params")  # a parameter may be called "tier" too
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        required = set(schema.get("required", []))
        for name, spec in schema.get("properties", {}).items():
            self.fields[name] = schema_field(name, spec, required=name in required)

    def params(self) -> dict:
        values = {}
        for name, value in self.cleaned_data.items():
            if value is None or value == "":
                continue
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # "2" stays 2 in the command, not 2.0
            values[name] = value
        return values

    def add_schema_errors(self, error: ValidationError) -> None:
        """Put the errors of :func:`jobs.argv.params_validate` (keyed by parameter) next
        to their fields; errors of the whole object go on top of the form."""
        for name, messages in error.message_dict.items():
            self.add_error(name if name in self.fields else None, messages)

    def add_service_errors(self, messages: list[str]) -> None:
        """The ``params`` errors of :func:`jobs.services.job_submit` read "name: message";
        each goes next to the field it names."""
        for message in messages:
            name, _, text = message.partition(": ")
            if text and name in self.fields:
                self.add_error(name, text)
            else:
                self.add_error(None, message)


class JobOptionsForm(forms.Form):
    """Step 2: the GPU class (only when the service level allows several), the off-peak
    hold (batch only) and the idempotency key that makes a double click harmless."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=100)

    def __init__(self, *args, service_level: ServiceLevel, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["idempotency_key"].initial = uuid.uuid4().hex
        classes = service_level.gpu_classes.order_by("name")
        if classes.count() > 1:
            self.fields["gpu_class"] = forms.ModelChoiceField(
                queryset=classes,
                to_field_name="slug",
                required=False,
                label="GPU class",
                empty_label="Any (the one with the most free GPUs)",
            )
        if service_level.tier == Tier.BATCH:
            self.fields["off_peak"] = forms.BooleanField(
                required=False,
                initial=service_level.hold_for_off_peak,
                label="Hold for the off-peak hours",
                help_text="The job waits until an off-peak window opens, where GPU-hours "
                "cost less.",
            )
