"""The runner in-process (the same code a worker runs): outputs, failures with their
reason and log tail, and a command that cannot start."""

from decimal import Decimal

from jobs import runner
from jobs.models import GenerationJob
from tests import factories


def _job(world, **kind_fields):
    kind = factories.JobKindFactory(slug="runner-kind", **kind_fields)
    return factories.GenerationJobFactory(
        department=world.marketing,
        submitter=world.user("manager"),
        kind=kind,
        gpu_class=world.t4,
        gpus=2,
        params={"seconds": 0.2, "text": "hello"},
        namespace="dept-marketing",
    )


def test_a_job_runs_in_its_folder_and_lists_its_outputs(world, settings):
    job = _job(world)
    assert runner.job_run(job_id=job.pk, worker="w1") == runner.Outcome.DONE
    job.refresh_from_db()
    assert (job.state, job.exit_code, job.result_files) == ("succeeded", 0, ["result.txt"])
    folder = settings.MEDIA_ROOT / "jobs" / str(job.pk)
    assert (folder / "result.txt").read_text() == "hello"
    assert "--- attempt 1 on w1" in (folder / "job.log").read_text()
    # 2 GPUs for at least the 0.2 s the command slept.
    assert Decimal("0.4") <= job.gpu_seconds < Decimal("20")


def test_a_failing_command_keeps_its_error_and_log_tail(world):
    job = _job(
        world,
        argv_template=["{python}", "-c", "import sys; print('model weights missing'); sys.exit(3)"],
        params_schema={"type": "object", "properties": {}},
    )
    runner.job_run(job_id=job.pk, worker="w1")
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("failed", 3)
    assert job.reason == "The command exited with status 3; see the log."
    assert "model weights missing" in job.log_tail


def test_a_command_that_is_not_installed_fails_with_a_clear_reason(world):
    job = _job(world, argv_template=["no-such-program-here", "{text}"])
    runner.job_run(job_id=job.pk, worker="w1")
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.reason == "Its command could not start on w1."
    assert job.error.startswith("no-such-program-here: No such file or directory")
    # Only the moment the worker held it, from its start to the failure.
    assert 0 <= job.gpu_seconds < 1


def test_a_job_another_worker_runs_is_left_alone(world):
    job = _job(world)
    GenerationJob.objects.filter(pk=job.pk).update(state="running", worker="w2")
    from django.utils import timezone

    GenerationJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert runner.job_run(job_id=job.pk, worker="w1") == runner.Outcome.BUSY
    assert runner.job_run(job_id=world.manager_job.pk, worker="w1") == runner.Outcome.SKIPPED
