"""A job kind's argv template and parameters can never become a shell command or an
option the kind did not intend."""

import pytest
from django.core.exceptions import ValidationError

from jobs import argv
from jobs.models import JobKind

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "speed": {"type": "integer", "default": 150}},
    "required": ["text"],
    "additionalProperties": False,
}


def kind(**fields):
    values = {
        "name": "Speech",
        "slug": "speech",
        "argv_template": ["espeak-ng", "-s", "{speed}", "-w", "{output_dir}/a.wav", "{text}"],
        "params_schema": SCHEMA,
        "max_runtime_s": 60,
    }
    values.update(fields)
    return JobKind(**values)


def test_a_well_formed_kind_validates(db):
    kind().full_clean()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"argv_template": "espeak-ng {text}"}, "argv_template", "list of non-empty strings"),
        (
            {"argv_template": ["{text}"]},
            "argv_template",
            "program (the first element) must be fixed",
        ),
        ({"argv_template": ["x", "{text.__class__}"]}, "argv_template", "not a plain placeholder"),
        ({"argv_template": ["x", "{text!r}"]}, "argv_template", "not a plain placeholder"),
        ({"argv_template": ["x", "{nope}"]}, "argv_template", "schema does not describe"),
        ({"argv_template": ["x", "{"]}, "argv_template", "In “{”"),
        ({"params_schema": {"type": "array"}}, "params_schema", "must describe an object"),
        (
            {"params_schema": {"type": "object", "properties": {"a": {"type": "object"}}}},
            "params_schema",
            "needs a type out of",
        ),
        (
            {"params_schema": {"type": "object", "properties": {"python": {"type": "string"}}}},
            "params_schema",
            "provided by the worker",
        ),
        ({"allowed_tiers": ["urgent"]}, "allowed_tiers", "distinct tiers"),
        (
            {
                "params_schema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "additionalProperties": False,
                },
                "argv_template": ["x", "{text}"],
            },
            "argv_template",
            "make it required or give it a default",
        ),
    ],
)
def test_malformed_kinds_are_refused_with_the_field(db, fields, field, words):
    with pytest.raises(ValidationError) as refused:
        kind(**fields).full_clean()
    assert words in " ".join(refused.value.message_dict[field])


def test_parameters_fill_whole_arguments_and_defaults_apply():
    values = argv.params_validate(SCHEMA, {"text": "hello; rm -rf / && echo $HOME"})
    rendered = argv.render(
        kind().argv_template, values, builtins={"output_dir": "/out", "job_id": "1", "python": "py"}
    )
    assert rendered == [
        "espeak-ng",
        "-s",
        "150",
        "-w",
        "/out/a.wav",
        "hello; rm -rf / && echo $HOME",
    ]


def test_a_parameter_that_would_be_read_as_an_option_is_refused():
    with pytest.raises(ValidationError) as refused:
        argv.render(
            kind().argv_template,
            {"text": "-w/etc/passwd", "speed": 1},
            builtins={"output_dir": "/out", "job_id": "1", "python": "py"},
        )
    assert "May not start with “-”" in str(refused.value)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({}, "text", "is required"),
        ({"text": "a", "speed": "fast"}, "speed", "is not of type 'integer'"),
        ({"text": "a", "shell": "sh"}, "shell", "Unknown parameter"),
        ({"text": "a\x00b"}, "text", "NUL"),
    ],
)
def test_parameters_are_checked_against_the_schema(params, field, words):
    with pytest.raises(ValidationError) as refused:
        argv.params_validate(SCHEMA, params)
    assert words in " ".join(refused.value.message_dict[field])


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"argv_template": ["{python}{text}", "x"]}, "argv_template", "exactly {python}"),
        (
            {"params_schema": {**SCHEMA, "additionalProperties": True}},
            "params_schema",
            '"additionalProperties": false',
        ),
        (
            {
                "params_schema": {
                    **SCHEMA,
                    "properties": {
                        **SCHEMA["properties"],
                        "speed": {"type": "integer", "default": "x"},
                    },
                }
            },
            "params_schema",
            "default of “speed” does not fit",
        ),
    ],
)
def test_schemas_and_programs_that_would_surprise_are_refused(db, fields, field, words):
    with pytest.raises(ValidationError) as refused:
        kind(**fields).full_clean()
    assert words in " ".join(refused.value.message_dict[field])


def test_a_parameter_at_the_start_of_an_argument_cannot_make_it_an_option():
    template = ["rm", "{text}.txt"]
    with pytest.raises(ValidationError):
        argv.render(template, {"text": "-rf"}, builtins={})
    assert argv.render(["seek", "{speed}"], {"speed": -5}, builtins={}) == ["seek", "-5"]
