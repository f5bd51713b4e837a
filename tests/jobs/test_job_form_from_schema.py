"""The submit form is built from the kind's parameter schema, and every error, from the
form, from the schema or from the service, shows next to the field it is about."""

import re

import pytest
from django import forms

from jobs.forms import JobOptionsForm, JobParamsForm
from jobs.models import GenerationJob
from tests.conftest import client_as
from tests.factories import JobKindFactory

SCHEMA = {
    "type": "object",
    "properties": {
        "voice": {
            "type": "string",
            "enum": ["anna", "ben"],
            "title": "Voice",
            "description": "Who reads the script.",
            "default": "ben",
        },
        "script": {"type": "string", "maxLength": 2000, "title": "Script"},
        "caption": {"type": "string", "maxLength": 80, "pattern": "^[a-z ]*$"},
        "fps": {"type": "integer", "minimum": 12, "maximum": 60, "default": 25},
        "scale": {"type": "number", "minimum": 0.5, "maximum": 2},
        "subtitles": {"type": "boolean", "default": True, "title": "Burn in subtitles"},
    },
    "required": ["script"],
    "additionalProperties": False,
}
STEP_2 = "/jobs/submit/?department=marketing&kind=talking-head&tier=batch"


@pytest.fixture
def talking_head(world):
    return JobKindFactory(
        slug="talking-head",
        name="Talking head",
        params_schema=SCHEMA,
        argv_template=["{python}", "-c", "pass", "{voice}", "{script}", "{fps}", "{subtitles}"],
    )


def _post(client, **params):
    body = {"department": "marketing", "kind": "talking-head", "tier": "batch"}
    body.update({f"params-{name}": value for name, value in params.items()})
    return client.post("/jobs/submit/", body)


def _field_errors(page: str, name: str) -> list[str]:
    return re.findall(rf'<p class="error" id="id_params-{name}_error">([^<]*)</p>', page)


def test_each_schema_type_becomes_the_matching_field():
    fields = JobParamsForm(schema=SCHEMA).fields

    voice = fields["voice"]
    assert isinstance(voice, forms.TypedChoiceField)
    # Not required: a blank first choice leaves it to the schema's default.
    assert [value for value, _ in voice.choices] == ["", "anna", "ben"]
    assert (voice.label, voice.help_text, voice.initial) == (
        "Voice",
        "Who reads the script.",
        "ben",
    )
    assert voice.required is False

    assert isinstance(fields["script"].widget, forms.Textarea)  # maxLength over 200
    assert fields["script"].required is True
    assert isinstance(fields["caption"].widget, forms.TextInput)
    assert fields["caption"].max_length == 80
    assert fields["caption"].label == "Caption"  # no title: the name, readable

    fps = fields["fps"]
    assert isinstance(fps, forms.IntegerField)
    assert (fps.min_value, fps.max_value, fps.initial) == (12, 60, 25)

    scale = fields["scale"]
    assert isinstance(scale, forms.FloatField)
    assert (scale.min_value, scale.max_value) == (0.5, 2)

    subtitles = fields["subtitles"]
    assert isinstance(subtitles, forms.BooleanField)
    assert (subtitles.initial, subtitles.label) == (True, "Burn in subtitles")


def test_an_enum_of_integers_gives_back_integers():
    schema = {"type": "object", "properties": {"size": {"type": "integer", "enum": [256, 512]}}}
    form = JobParamsForm({"params-size": "512"}, schema=schema)
    assert form.is_valid(), form.errors
    assert form.params() == {"size": 512}


def test_empty_optional_fields_are_left_out_so_the_schema_defaults_apply():
    form = JobParamsForm(
        {"params-script": "Hello", "params-voice": "", "params-scale": "2"}, schema=SCHEMA
    )
    assert form.is_valid(), form.errors
    # No voice, fps or caption: left to the schema; a whole number stays an integer;
    # the unticked box is a value (false).
    assert form.params() == {"script": "Hello", "scale": 2, "subtitles": False}


def test_the_submit_page_shows_the_fields_of_the_kind(world, client, talking_head):
    page = client_as(client, world, "manager").get(STEP_2).content.decode()
    assert re.search(r'<select name="params-voice"[^>]*>', page)
    assert '<option value="ben" selected>ben</option>' in page
    assert re.search(r'<textarea name="params-script"[^>]*required', page)
    assert re.search(r'<input type="text" name="params-caption"[^>]*maxlength="80"', page)
    assert re.search(r'<input type="number" name="params-fps" value="25" min="12" max="60"', page)
    assert re.search(r'<input type="checkbox" name="params-subtitles"[^>]*checked', page)
    assert "Who reads the script." in page
    assert ">Burn in subtitles</label>" in page


def test_a_missing_required_field_and_a_value_out_of_bounds_are_shown_next_to_them(
    world, client, talking_head
):
    response = _post(client_as(client, world, "manager"), script="", fps="100")
    page = response.content.decode()
    assert response.status_code == 200
    assert _field_errors(page, "script") == ["This field is required."]
    assert _field_errors(page, "fps") == ["Ensure this value is less than or equal to 60."]
    assert _field_errors(page, "voice") == []
    assert not GenerationJob.objects.filter(kind=talking_head).exists()


def test_a_rule_only_the_schema_knows_comes_back_next_to_its_field(world, client, talking_head):
    page = _post(client_as(client, world, "manager"), script="Hi", caption="SHOUT").content.decode()
    assert _field_errors(page, "caption") == [
        "&#x27;SHOUT&#x27; does not match &#x27;^[a-z ]*$&#x27;"
    ]
    assert not GenerationJob.objects.filter(kind=talking_head).exists()


def test_a_value_that_would_read_as_an_option_is_refused_next_to_its_field(
    world, client, talking_head
):
    # The schema allows it; the service refuses it when it builds the command.
    page = _post(client_as(client, world, "manager"), script="--help").content.decode()
    assert _field_errors(page, "script") == [
        "May not start with “-”: it would be read as an option."
    ]
    assert not GenerationJob.objects.filter(kind=talking_head).exists()


def test_a_valid_form_submits_the_values_with_the_schema_defaults(world, client, talking_head):
    response = _post(client_as(client, world, "manager"), script="Hello there", scale="1.5")
    job = GenerationJob.objects.get(kind=talking_head)
    assert response.status_code == 302
    assert job.params == {
        "script": "Hello there",
        "scale": 1.5,
        "subtitles": False,
        "voice": "ben",
        "fps": 25,
    }


def test_a_gpu_class_choice_is_offered_only_when_the_service_level_allows_several(world):
    one_class = JobOptionsForm(service_level=world.marketing_sla)
    several = JobOptionsForm(service_level=world.training_sla)
    assert "gpu_class" not in one_class.fields
    assert [c.slug for c in several.fields["gpu_class"].queryset] == ["a100", "t4"]


def test_the_off_peak_hold_is_offered_for_batch_work_only_ticked_as_the_sla_says(world):
    world.marketing_sla.hold_for_off_peak = True
    assert JobOptionsForm(service_level=world.marketing_sla).fields["off_peak"].initial is True
    assert "off_peak" not in JobOptionsForm(service_level=world.training_sla).fields


def test_each_rendering_of_the_form_carries_a_new_idempotency_key(world):
    first = JobOptionsForm(service_level=world.marketing_sla)["idempotency_key"].value()
    second = JobOptionsForm(service_level=world.marketing_sla)["idempotency_key"].value()
    assert len(first) == 32 and first != second


def test_a_chosen_gpu_class_is_used_for_the_job(world, client):
    client_as(client, world, "other_manager").post(
        "/jobs/submit/",
        {
            "department": "training",
            "kind": "lipsync-render",
            "tier": "interactive",
            "params-seconds": "1",
            "params-text": "x",
            "gpu_class": "a100",
        },
    )
    job = GenerationJob.objects.get(department=world.training)
    assert job.gpu_class == world.a100


def test_a_step_one_choice_the_service_would_refuse_is_shown_on_step_one(world, client):
    page = (
        client_as(client, world, "manager")
        .get("/jobs/submit/?department=marketing&kind=lipsync-render&tier=realtime")
        .content.decode()
    )
    assert (
        '<p class="error" id="id_tier_error">Marketing has no service level for realtime work.'
        in page
    )
    assert 'name="params-seconds"' not in page
