"""Job kinds as data: install or update :class:`~jobs.models.JobKind` rows from plain
dicts, as kept in the JSON files of this folder (``production.json``: the digital-human
pipeline's real model commands) and in the demo seed.

``manage.py load_job_kinds jobs/kinds/production.json`` is how IT installs a file; the
admin is where they are tuned afterwards.
"""

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from jobs.models import JobKind

FIELDS = (
    "name",
    "description",
    "argv_template",
    "params_schema",
    "default_gpus",
    "max_runtime_s",
    "allowed_tiers",
)
REQUIRED = ("slug", "name", "argv_template", "max_runtime_s")
PRODUCTION_FILE = Path(__file__).with_name("production.json")


@dataclass(frozen=True)
class KindLoaded:
    kind: JobKind
    action: str  # "created", "updated" or "unchanged"


def job_kind_specs_read(path: str | PathLike[str]) -> list[dict]:
    """The kind specs of a JSON file: a list of objects, or ``{"kinds": [...]}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("kinds")
    if not isinstance(data, list) or not all(isinstance(spec, dict) for spec in data):
        raise ValidationError(f'{path} must hold a list of job kinds, or {{"kinds": [...]}}.')
    return data


def _converge(spec: dict, activate: bool | None) -> KindLoaded:
    unknown = set(spec) - {*FIELDS, "slug", "active", "notes"}
    missing = [name for name in REQUIRED if name not in spec]
    if unknown or missing:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown fields {', '.join(sorted(unknown))}")
        raise ValidationError("; ".join(problems))
    kind = JobKind.objects.filter(slug=spec["slug"]).first()
    created = kind is None
    if created:
        kind = JobKind(slug=spec["slug"], active=spec.get("active", False))
    values = {name: spec[name] for name in FIELDS if name in spec}
    if activate is not None:
        values["active"] = activate
    changed = [name for name, value in values.items() if getattr(kind, name) != value]
    for name in changed:
        setattr(kind, name, values[name])
    kind.full_clean()
    if created or changed:
        kind.save()
    return KindLoaded(kind, "created" if created else "updated" if changed else "unchanged")


@transaction.atomic
def job_kinds_load(specs: list[dict], *, activate: bool | None = None) -> list[KindLoaded]:
    """Create or update the job kinds ``specs`` describe, found by slug, each validated
    with ``full_clean()``; all or nothing: one invalid spec raises ``ValidationError``
    (naming its slug) and leaves every kind as it was.

    Idempotent: loading the same specs again writes nothing. Fields a spec leaves out keep
    their value (or the model's default). ``active`` is ``activate`` when given; otherwise a
    new kind takes the spec's ``active`` (``false`` when absent) and an existing one keeps
    its own, so loading a file again never switches off what IT switched on."""
    loaded, seen = [], set()
    for number, spec in enumerate(specs, start=1):
        label = spec.get("slug") or f"kind #{number}"
        if label in seen:
            raise ValidationError(f"{label}: appears twice.")
        seen.add(label)
        try:
            loaded.append(_converge(spec, activate))
        except ValidationError as exc:
            messages = (
                [f"{field}: {m}" for field, ms in exc.message_dict.items() for m in ms]
                if hasattr(exc, "error_dict")
                else exc.messages
            )
            raise ValidationError([f"{label}: {message}" for message in messages]) from exc
    return loaded
