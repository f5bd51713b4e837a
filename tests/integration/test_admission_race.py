"""Many people submit at the same moment for the last slots of a quota: PostgreSQL's row
lock on the department makes admission see every earlier admission, so exactly the room
left is admitted, whatever the kind of quota, and the others wait or are refused as the
quota's enforcement says. The same idempotency key raced makes exactly one job."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from departments.models import Enforcement, QuotaKind, Tier
from jobs import dispatch, selectors, services
from jobs.models import GenerationJob, JobState
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SUBMITTERS = 32
ROOM = 5
# A Wednesday noon in UTC, so every submission falls on the same portal day and month.
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _department(*, gpus_per_job: int = 1, max_runtime_s: int = 600, submitters: int = 1):
    """A department whose members submit batch jobs of one kind on one GPU class."""
    department = factories.DepartmentFactory()
    factories.NamespaceFactory(name=f"dept-{department.slug}", department=department)
    gpu_class = factories.GpuClassFactory(capacity_gpus=64)
    factories.ServiceLevelFactory(department=department, tier=Tier.BATCH, gpu_classes=[gpu_class])
    kind = factories.JobKindFactory(default_gpus=gpus_per_job, max_runtime_s=max_runtime_s)
    users = [factories.UserFactory() for _ in range(submitters)]
    for user in users:
        factories.MembershipFactory(user=user, department=department)
    return department, gpu_class, kind, users


def _earlier_job(**fields):
    return factories.GenerationJobFactory(namespace=f"dept-{fields['department'].slug}", **fields)


def _prefill(kind_of_quota: str, department, gpu_class, kind, user) -> Decimal:
    """Jobs that already use part of the quota; returns the quota's limit, which leaves
    exactly ``ROOM`` jobs of room."""
    earlier = {"department": department, "gpu_class": gpu_class, "kind": kind, "submitter": user}
    if kind_of_quota == QuotaKind.JOBS_DAY:
        # Three admitted today (two already ended); one admitted yesterday does not count.
        for state in ("succeeded", "failed", "running"):
            _earlier_job(**earlier, state=state, admitted_at=NOW - dt.timedelta(hours=2))
        _earlier_job(**earlier, state="succeeded", admitted_at=NOW - dt.timedelta(days=1))
        return Decimal(3 + ROOM)
    if kind_of_quota == QuotaKind.CONCURRENT_JOBS:
        # Three queued or running count; an ended one does not.
        for state in ("queued", "running", "running", "succeeded"):
            _earlier_job(**earlier, state=state, admitted_at=NOW - dt.timedelta(hours=1))
        return Decimal(3 + ROOM)
    if kind_of_quota == QuotaKind.GPUS:
        # Jobs take 2 GPUs each: 6 GPUs in use, 10 GPUs of room = 5 jobs.
        for state in ("queued", "running", "running", "succeeded"):
            _earlier_job(**earlier, state=state, gpus=2, admitted_at=NOW - dt.timedelta(hours=1))
        return Decimal(6 + 2 * ROOM)
    # gpu_hours_month: jobs reserve 1 GPU-hour each (1 GPU x 3600 s). Two running jobs hold
    # 2 GPU-hours; a job that ended this month used 1 GPU-hour (not metered yet).
    for _ in range(2):
        _earlier_job(**earlier, state="running", gpu_hours_reserved=Decimal(1), gpus=1)
    _earlier_job(
        **earlier,
        state="succeeded",
        gpu_seconds=Decimal(3600),
        finished_at=NOW - dt.timedelta(hours=1),
    )
    return Decimal(3 + ROOM)


def _race(submit, count: int = SUBMITTERS) -> list:
    """Run ``submit(i)`` in ``count`` threads that start together, each on its own
    database connection; returns what each returned (or raised)."""
    start = threading.Barrier(count)
    outcomes: list = [None] * count

    def one(i: int) -> None:
        try:
            start.wait(timeout=30)
            outcomes[i] = submit(i)
        except Exception as exc:  # reported by the test, with its thread
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a submission never returned"
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert not errors, errors[:3]
    return outcomes


@pytest.fixture
def dispatched(monkeypatch) -> list:
    """The ids of the jobs sent to the broker after their admission committed (recorded,
    not sent: the race is about admission)."""
    sent: list = []
    lock = threading.Lock()

    def record(*, job_id, **placement):
        with lock:
            sent.append(job_id)
        return True

    monkeypatch.setattr(dispatch, "job_dispatch", record)
    return sent


@pytest.mark.parametrize(
    "enforcement, others",
    [(Enforcement.HARD_QUEUE, JobState.WAITING), (Enforcement.HARD_REJECT, JobState.REJECTED)],
)
@pytest.mark.parametrize(
    "kind_of_quota",
    [QuotaKind.JOBS_DAY, QuotaKind.CONCURRENT_JOBS, QuotaKind.GPUS, QuotaKind.GPU_HOURS_MONTH],
)
def test_concurrent_submissions_admit_exactly_the_room_left(
    postgres, dispatched, kind_of_quota, enforcement, others
):
    gpus = 2 if kind_of_quota == QuotaKind.GPUS else 1
    department, gpu_class, kind, users = _department(gpus_per_job=gpus, max_runtime_s=3600)
    limit = _prefill(kind_of_quota, department, gpu_class, kind, users[0])
    quota = factories.QuotaFactory(
        department=department, kind=kind_of_quota, limit=limit, enforcement=enforcement
    )
    assert selectors.quota_use(quota, at=NOW) == limit - ROOM * (
        gpus if kind_of_quota == QuotaKind.GPUS else 1
    )
    earlier = set(GenerationJob.objects.values_list("pk", flat=True))

    submissions = _race(
        lambda i: services.job_submit(
            department=department,
            kind=kind,
            params={"seconds": i},
            tier=Tier.BATCH,
            user=users[0],
            now=NOW,
        )
    )

    new = GenerationJob.objects.exclude(pk__in=earlier)
    states = sorted(new.values_list("state", flat=True))
    assert len(submissions) == SUBMITTERS and all(s.created for s in submissions)
    assert states.count(JobState.QUEUED) == ROOM
    assert states.count(others) == SUBMITTERS - ROOM
    assert new.count() == SUBMITTERS
    # The quota is full, not over: the admitted jobs took the room exactly.
    assert selectors.quota_use(quota, at=NOW) == limit
    # Only the admitted jobs went to the broker, each once, after its admission committed.
    admitted = set(new.filter(state=JobState.QUEUED).values_list("pk", flat=True))
    assert sorted(map(str, dispatched)) == sorted(map(str, admitted))
    # The others say which quota holds them back.
    assert set(new.filter(state=others).values_list("blocking_quota", flat=True)) == {quota.pk}


def test_concurrent_submissions_with_one_idempotency_key_make_exactly_one_job(postgres, dispatched):
    department, _, kind, users = _department(submitters=SUBMITTERS)

    submissions = _race(
        lambda i: services.job_submit(
            department=department,
            kind=kind,
            params={"text": f"take {i}"},
            tier=Tier.BATCH,
            # One client retrying at once (a key is its submitter's: another person's
            # use of it is refused, see tests/jobs/test_idempotency_keys.py).
            user=users[0],
            idempotency_key="render-2026-11-25",
        )
    )

    job = GenerationJob.objects.get(department=department)
    assert job.state == JobState.QUEUED
    assert {s.job.pk for s in submissions} == {job.pk}
    assert [s.created for s in submissions].count(True) == 1
    # Every caller got the job the one winner created, with the winner's parameters.
    winner = next(s for s in submissions if s.created)
    assert {s.job.submitter_id for s in submissions} == {winner.job.submitter_id}
    assert job.params["text"] == winner.job.params["text"]
    assert dispatched == [job.pk]
