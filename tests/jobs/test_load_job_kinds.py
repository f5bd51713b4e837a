"""`manage.py load_job_kinds`: IT installs the production templates (jobs/kinds/
production.json) with one command; every kind is validated as the admin validates it,
the file loads all or nothing, and loading it again changes nothing."""

import io
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from jobs import argv
from jobs.kinds import PRODUCTION_FILE, job_kind_specs_read
from jobs.models import JobKind

pytestmark = pytest.mark.django_db

PRODUCTION_SLUGS = [
    "llm-text-generation",
    "speech-recognition",
    "voice-clone-synthesis",
    "wav2lip-lipsync",
]
# Parameters a department would send, for each production kind.
EXAMPLES = {
    "llm-text-generation": {"prompt": "Write a 30-second welcome for new customers."},
    "speech-recognition": {"recording": "town-hall_2026-11.mp4", "language": "de"},
    "voice-clone-synthesis": {"text": "Welcome!", "voice": "anna"},
    "wav2lip-lipsync": {"face": "anna.mp4", "speech_job": "0b1f5a3e-1111-4222-8333-444455556666"},
}


def _load(*args) -> str:
    out = io.StringIO()
    call_command("load_job_kinds", *args, stdout=out)
    return out.getvalue()


def _write(tmp_path, specs) -> str:
    path = tmp_path / "kinds.json"
    path.write_text(json.dumps(specs), encoding="utf-8")
    return str(path)


def test_the_production_templates_install_inactive_and_valid():
    output = _load()
    kinds = JobKind.objects.order_by("slug")
    assert [k.slug for k in kinds] == PRODUCTION_SLUGS
    assert not any(k.active for k in kinds)
    assert "4 created, 0 updated" in output and "switch them on" in output
    for kind in kinds:
        kind.full_clean()


@pytest.mark.parametrize("slug", PRODUCTION_SLUGS)
def test_each_production_template_renders_an_argv_with_its_parameters_in_place(slug):
    _load()
    kind = JobKind.objects.get(slug=slug)
    values = argv.params_validate(kind.params_schema, EXAMPLES[slug])
    builtins = {"output_dir": "/srv/portal/media/jobs/x", "job_id": "x", "python": "python"}
    rendered = argv.render(kind.argv_template, values, builtins=builtins)
    assert rendered[0].startswith("/") or "/" not in rendered[0]
    for value in EXAMPLES[slug].values():
        assert any(value in element for element in rendered), value


SPEECH_JOB = EXAMPLES["wav2lip-lipsync"]["speech_job"]


@pytest.mark.parametrize(
    ("slug", "params", "field"),
    [
        ("wav2lip-lipsync", {"face": "../../etc/passwd", "speech_job": SPEECH_JOB}, "face"),
        ("wav2lip-lipsync", {"face": "anna.mp4", "speech_job": "x; rm -rf /"}, "speech_job"),
        ("speech-recognition", {"recording": "a b.wav"}, "recording"),
        ("voice-clone-synthesis", {"text": "Hi", "voice": "anna/../../secret"}, "voice"),
    ],
)
def test_file_parameters_cannot_leave_their_folder_or_reach_a_shell(slug, params, field):
    _load()
    kind = JobKind.objects.get(slug=slug)
    with pytest.raises(ValidationError) as refused:
        argv.params_validate(kind.params_schema, params)
    assert list(refused.value.message_dict) == [field]
    assert "does not match" in refused.value.message_dict[field][0]


def test_loading_again_changes_nothing_and_keeps_what_it_switched_on():
    _load()
    JobKind.objects.filter(slug="speech-recognition").update(active=True)
    before = sorted(JobKind.objects.values_list("slug", "active", "updated_at"))
    output = _load()
    assert sorted(JobKind.objects.values_list("slug", "active", "updated_at")) == before
    assert "0 created, 0 updated" in output


def test_activate_switches_every_loaded_kind_on():
    _load()
    _load("--activate")
    assert set(JobKind.objects.values_list("active", flat=True)) == {True}


def test_a_file_with_one_invalid_kind_loads_nothing(tmp_path):
    good, bad = job_kind_specs_read(PRODUCTION_FILE)[:2]
    bad = {**bad, "argv_template": ["{undeclared}", "x"]}
    with pytest.raises(CommandError) as refused:
        _load(_write(tmp_path, [good, bad]))
    assert f"{bad['slug']}: argv_template:" in str(refused.value)
    assert not JobKind.objects.exists()


def test_a_kind_with_an_unknown_field_is_refused_by_name(tmp_path):
    spec = {**job_kind_specs_read(PRODUCTION_FILE)[0], "gpus": 2}
    with pytest.raises(CommandError, match=f"{spec['slug']}: unknown fields gpus"):
        _load(_write(tmp_path, {"kinds": [spec]}))
    assert not JobKind.objects.exists()


def test_the_documented_definitions_are_the_ones_that_load():
    docs = (PRODUCTION_FILE.parents[2] / "docs" / "job-kinds.md").read_text(encoding="utf-8")
    documented = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", docs, re.S)]
    shipped = [
        {key: value for key, value in spec.items() if key != "notes"}
        for spec in job_kind_specs_read(PRODUCTION_FILE)
    ]
    assert documented == shipped
