"""A parameter that names an earlier job must name a succeeded job the submitter may see."""

import pytest

from tests import factories


def test_a_parameter_naming_an_earlier_job_must_name_a_visible_succeeded_one(world, submit):
    from django.core.exceptions import ValidationError

    reader = factories.JobKindFactory(
        slug="reads-a-job",
        argv_template=["cat", "{speech_job}"],
        params_schema={
            "type": "object",
            "properties": {"speech_job": {"type": "string", "x-portal-job": True}},
            "required": ["speech_job"],
            "additionalProperties": False,
        },
    )
    # The manager's own succeeded marketing job: fine.
    assert submit(kind=reader, params={"speech_job": str(world.manager_job.pk)}).state
    # Another department's, or one the submitter cannot see, or not a job at all: refused.
    other = factories.GenerationJobFactory(
        department=world.training, kind=world.lipsync, state="succeeded"
    )
    for value in (str(other.pk), "not-a-uuid"):
        with pytest.raises(ValidationError) as refused:
            submit(kind=reader, params={"speech_job": value})
        assert "no succeeded job" in str(refused.value)
    with pytest.raises(ValidationError):
        submit(
            kind=reader,
            params={"speech_job": str(world.manager_job.pk)},
            user=world.user("member"),  # a member sees only their own jobs
        )
