"""A job's times read in the order things happened: admitted (or refused) no earlier than
it was submitted; the same moment when admission decided at once."""

from jobs.models import GenerationJob
from tests.jobs.conftest import quota


def test_a_job_admitted_at_once_was_admitted_when_it_was_submitted(world, submit):
    job = submit(now=None)
    stored = GenerationJob.objects.get(pk=job.pk)
    assert stored.state == "queued"
    assert stored.admitted_at == stored.queued_at == stored.submitted_at


def test_a_job_refused_at_once_ended_when_it_was_submitted(world, submit):
    quota(world, "jobs_day", 1, "hard_reject")
    submit(now=None)
    refused = GenerationJob.objects.get(pk=submit(now=None).pk)
    assert refused.state == "rejected"
    assert refused.finished_at == refused.submitted_at
