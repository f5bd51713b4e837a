"""Jobs submitted through admission travel over a real Redis broker to real ``celery
worker`` processes (prefork, one child, as production runs them) that run their commands
against the test's PostgreSQL: success with its output, a worker killed mid-job, a cancel,
and a command that runs past its max runtime."""

import os
import re
import signal
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from departments.models import Membership, Tier
from jobs import services
from jobs.models import GenerationJob, JobState
from tests import factories
from tests.integration.conftest import (
    broker_queues_delete,
    celery_worker,
    database_quiet,
    database_url,
    free_port,
    portal_producer,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Prints its pid (to job.log), sleeps ``seconds``, then writes ``text`` to result.txt.
ARGV = [
    "{python}",
    "-c",
    "import os, sys, time; print('pid', os.getpid(), flush=True); "
    "time.sleep(float(sys.argv[1])); open('result.txt', 'w').write(sys.argv[2])",
    "{seconds}",
    "{text}",
]


WORKER_ENV = {
    "JOBS_HEARTBEAT_S": "0.5",
    "JOBS_HEARTBEAT_STALE_S": "2",
    "JOBS_STOP_GRACE_S": "2",
    "CELERY_VISIBILITY_TIMEOUT_S": "1",
}


def unique_queue_prefix() -> str:
    return f"gpu.itest-{uuid.uuid4().hex[:8]}"


def worker_on(queue_prefix: str, *, redis_url: str, tmp_path: Path, name: str, **env: str):
    """A prefork worker with one child (as production runs them) on the interactive queue
    of ``queue_prefix``, writing job output under ``tmp_path/media``."""
    return celery_worker(
        broker_url=redis_url,
        tmp_path=tmp_path,
        queues=[f"{queue_prefix}.{Tier.INTERACTIVE}"],
        pool="prefork",
        concurrency=1,
        log_name=f"{name}.log",
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(tmp_path / "media"),
        **WORKER_ENV,
        **env,
    )


class Setup:
    """A department with a manager and an interactive SLA on a GPU class whose queues
    (``queue_prefix``) no other test uses; submits jobs and starts workers for them."""

    def __init__(self, redis_url: str, tmp_path: Path, queue_prefix: str):
        self.redis_url = redis_url
        self.tmp_path = tmp_path
        self.queue_prefix = queue_prefix
        self.department = factories.DepartmentFactory(slug="marketing")
        factories.NamespaceFactory(name="dept-marketing", department=self.department)
        self.gpu_class = factories.GpuClassFactory(
            slug=queue_prefix.removeprefix("gpu."), queue_prefix=queue_prefix
        )
        factories.ServiceLevelFactory(
            department=self.department,
            tier=Tier.INTERACTIVE,
            priority=5,
            gpu_classes=[self.gpu_class],
        )
        self.manager = factories.UserFactory(username="mara")
        factories.MembershipFactory(
            user=self.manager, department=self.department, role=Membership.Role.MANAGER
        )

    def kind(self, **fields):
        return factories.JobKindFactory(
            slug="lipsync-render", argv_template=ARGV, **{"default_gpus": 2, **fields}
        )

    def submit(self, kind, **params) -> GenerationJob:
        job = services.job_submit(
            department=self.department,
            kind=kind,
            params=params,
            tier=Tier.INTERACTIVE,
            user=self.manager,
        ).job
        assert job.state == JobState.QUEUED, job.reason
        assert job.queue == f"{self.queue_prefix}.{Tier.INTERACTIVE}"
        return job

    def worker(self, name: str, **env: str):
        return worker_on(
            self.queue_prefix, redis_url=self.redis_url, tmp_path=self.tmp_path, name=name, **env
        )

    def folder(self, job) -> Path:
        return self.tmp_path / "media" / "jobs" / str(job.pk)


@pytest.fixture
def setup(postgres, redis_url, tmp_path):
    """For a test that starts its own workers, on queues of its own."""
    prefix = unique_queue_prefix()
    with portal_producer(redis_url):
        yield Setup(redis_url, tmp_path, prefix)
    broker_queues_delete(redis_url, prefix)


@pytest.fixture(scope="module")
def module_worker(django_db_setup, redis_url, tmp_path_factory):
    """One worker that the module's simple cases share (each start and stop costs
    seconds); it consumes queues that only those cases use."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the worker tests run on PostgreSQL")
    prefix = unique_queue_prefix()
    tmp_path = tmp_path_factory.mktemp("module-worker")
    with worker_on(prefix, redis_url=redis_url, tmp_path=tmp_path, name="worker") as worker:
        yield prefix, tmp_path, worker
    broker_queues_delete(redis_url, prefix)


@pytest.fixture
def shared(postgres, redis_url, module_worker):
    """``(setup, worker)`` for a test whose jobs the module's worker runs."""
    prefix, tmp_path, worker = module_worker
    with portal_producer(redis_url):
        yield Setup(redis_url, tmp_path, prefix), worker
    worker.wait_idle()
    database_quiet()


def wait_for(condition, *, timeout_s: float, what: str, worker=None):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            log = worker.log.read_text()[-3000:] if worker else ""
            pytest.fail(f"{what} not within {timeout_s} s\n{log}")
        time.sleep(0.1)
    return value


def ended(job) -> GenerationJob | None:
    job.refresh_from_db()
    return job if job.state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED) else None


def command_pid(setup: Setup, job, attempt: int = 1) -> int | None:
    """The pid the job's command printed in the given attempt, once it has."""
    try:
        log = (setup.folder(job) / "job.log").read_text()
    except FileNotFoundError:
        return None
    attempts = log.split("--- attempt ")
    if len(attempts) <= attempt:
        return None
    found = re.search(r"^pid (\d+)$", attempts[attempt], re.MULTILINE)
    return int(found.group(1)) if found else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a container's init may not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gpu_seconds_samples(port: int) -> dict:
    """``portal_job_gpu_seconds_total`` as the worker serves it, by its sorted labels."""
    # Imported here: prometheus-client picks its multiprocess mode when first imported.
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "portal_job_gpu_seconds"
        for sample in family.samples
        if sample.name == "portal_job_gpu_seconds_total"
    }


def test_a_job_runs_to_success_and_records_its_gpu_seconds(shared):
    setup, worker = shared
    kind = setup.kind()
    job = setup.submit(kind, seconds=1, text="lips in sync")
    wait_for(lambda: ended(job), timeout_s=20, what="the job's end", worker=worker)

    assert (job.state, job.exit_code, job.attempts) == (JobState.SUCCEEDED, 0, 1)
    assert job.worker == worker.node and job.dispatched_at is not None
    assert (setup.folder(job) / "result.txt").read_text() == "lips in sync"
    assert job.result_files == ["result.txt"]
    # 2 GPUs from the worker's start of it to its end (at least the 1 s it slept), to the
    # millisecond, in the hours it ran.
    wall_s = (job.finished_at - job.started_at).total_seconds()
    assert Decimal(2) <= job.gpu_seconds
    assert abs(job.gpu_seconds - Decimal(2 * wall_s)) <= Decimal("0.002")
    assert wall_s < 5
    assert sum(job.gpu_time.values_list("gpu_seconds", flat=True)) == job.gpu_seconds
    assert "--- attempt 1 on " + worker.node in (setup.folder(job) / "job.log").read_text()


def test_a_job_whose_worker_is_killed_is_finished_by_another_and_billed_once(setup):
    kind = setup.kind(default_gpus=1)
    metrics_port = free_port()
    with setup.worker("first") as first:
        job = setup.submit(kind, seconds=3, text="second time lucky")
        pid = wait_for(
            lambda: command_pid(setup, job), timeout_s=20, what="the command", worker=first
        )
        time.sleep(2)  # well into the job
        assert alive(pid)
        first_started = GenerationJob.objects.get(pk=job.pk).started_at
        killed_at = timezone.now()
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=5)
        # The command dies with its worker: nothing is left running on the GPU.
        wait_for(lambda: not alive(pid), timeout_s=15, what="the orphan's death")
    job.refresh_from_db()
    assert (job.state, job.attempts) == (JobState.RUNNING, 1)

    labels = (
        ("gpu_class", setup.gpu_class.slug),
        ("kind", "lipsync-render"),
        ("namespace", "dept-marketing"),
    )
    with setup.worker("second", JOBS_METRICS_PORT=str(metrics_port)) as second:
        wait_for(lambda: ended(job), timeout_s=30, what="the job's end", worker=second)
        # The worker counts the attempt's last piece just after recording it in the
        # database, and its heartbeats' pieces before that: wait for the whole of it.
        recorded = float(
            sum(s for a, s in job.gpu_time.values_list("attempt", "gpu_seconds") if a == 2)
        )

        def counted_all():
            found = gpu_seconds_samples(metrics_port)
            total = sum(found.values()) if found else 0.0
            return found if abs(total - recorded) <= 0.001 else None

        samples = wait_for(counted_all, timeout_s=15, what="the counter")

    assert (job.state, job.attempts, job.worker) == (JobState.SUCCEEDED, 2, second.node)
    assert (setup.folder(job) / "result.txt").read_text() == "second time lucky"
    log = (setup.folder(job) / "job.log").read_text()
    assert f"--- attempt 1 on {first.node}" in log and f"--- attempt 2 on {second.node}" in log
    # Each attempt is billed once for the time it held the GPU: the killed one up to its
    # last heartbeat (every 0.5 s; a loaded machine may miss one), never beyond its death;
    # the one that finished for its own 3 s run (plus the start of two interpreters).
    by_attempt = {
        attempt: sum(
            seconds
            for a, seconds in job.gpu_time.values_list("attempt", "gpu_seconds")
            if a == attempt
        )
        for attempt in (1, 2)
    }
    held = Decimal((killed_at - first_started).total_seconds())
    assert held - Decimal("1.5") <= by_attempt[1] <= held
    assert Decimal(3) <= by_attempt[2] < Decimal(5)
    assert job.gpu_seconds == by_attempt[1] + by_attempt[2]
    # The second worker's counter says what it recorded, under the labels the jobs metric
    # source reads. (Every series the worker may count starts at 0; only this one has.)
    counted = {series: value for series, value in samples.items() if value}
    assert list(counted) == [labels]
    assert counted[labels] == pytest.approx(float(by_attempt[2]), abs=0.001)


def test_a_running_job_that_is_cancelled_stops_its_command(shared):
    setup, worker = shared
    kind = setup.kind()
    job = setup.submit(kind, seconds=60, text="never")
    pid = wait_for(lambda: command_pid(setup, job), timeout_s=20, what="the command", worker=worker)
    asked = time.monotonic()
    services.job_cancel(job=job, user=setup.manager)
    wait_for(lambda: ended(job), timeout_s=5, what="the cancel", worker=worker)
    took_s = time.monotonic() - asked
    assert not alive(pid)

    assert job.state == JobState.CANCELLED
    assert job.cancelled_by == setup.manager
    assert job.reason == "Cancelled while running; the command was stopped."
    assert took_s < 3  # a heartbeat (0.5 s) and a SIGTERM, not the grace period
    assert not (setup.folder(job) / "result.txt").exists()
    assert 0 < job.gpu_seconds < Decimal(2 * 5)


def test_a_job_that_runs_past_its_max_runtime_fails(shared):
    setup, worker = shared
    kind = setup.kind(max_runtime_s=1)
    job = setup.submit(kind, seconds=60, text="too slow")
    pid = wait_for(lambda: command_pid(setup, job), timeout_s=20, what="the command", worker=worker)
    # Waits longer than the job may take: the GPU-seconds below bound how long it ran.
    wait_for(lambda: ended(job), timeout_s=20, what="the timeout", worker=worker)
    assert not alive(pid)

    assert job.state == JobState.FAILED
    assert "max runtime of 1 s" in job.reason
    assert job.exit_code == -signal.SIGTERM
    # Stopped about when its max runtime passed: 2 GPUs for a little over 1 s.
    assert Decimal(2) <= job.gpu_seconds < Decimal(2 * 3)
