"""A job submitted while the broker is down is admitted all the same: the request answers
at once, the job stays queued with no dispatch, and once the broker is back the sweeper
sends it and a real worker runs it."""

import time
import uuid

import pytest

from departments.models import Membership, Tier
from jobs import services
from jobs.models import GenerationJob, JobState
from tests import factories
from tests.integration.conftest import (
    broker_queues_delete,
    celery_worker,
    database_url,
    free_port,
    portal_producer,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def prefix(redis_url):
    """Queues of a GPU class only this test uses, deleted from the broker afterwards."""
    prefix = f"gpu.itest-{uuid.uuid4().hex[:8]}"
    yield prefix
    broker_queues_delete(redis_url, prefix)


def test_a_job_submitted_while_the_broker_is_down_runs_once_it_is_back(
    postgres, redis_url, tmp_path, api_client, prefix
):
    marketing = factories.DepartmentFactory(slug="marketing")
    factories.NamespaceFactory(name="dept-marketing", department=marketing)
    gpu_class = factories.GpuClassFactory(slug=prefix.removeprefix("gpu."), queue_prefix=prefix)
    factories.ServiceLevelFactory(department=marketing, tier=Tier.BATCH, gpu_classes=[gpu_class])
    factories.JobKindFactory(slug="lipsync-render")
    manager = factories.UserFactory(username="mara")
    factories.MembershipFactory(user=manager, department=marketing, role=Membership.Role.MANAGER)
    api_client.force_login(manager)
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"

    with portal_producer(nothing_listens):
        asked = time.monotonic()
        response = api_client.post(
            "/api/v1/jobs/",
            {
                "department": "marketing",
                "kind": "lipsync-render",
                "params": {"seconds": 0.2, "text": "sent late"},
                "tier": "batch",
            },
            format="json",
        )
        took_s = time.monotonic() - asked
        # While the broker is down the sweeper cannot send it either.
        assert services.jobs_sweep()["dispatched"] == 0

    assert response.status_code == 201, response.data
    assert took_s < 5  # the submitter does not wait on the broker
    job = GenerationJob.objects.get(pk=response.data["id"])
    assert (job.state, job.dispatched_at) == (JobState.QUEUED, None)

    with (
        portal_producer(redis_url),
        celery_worker(
            broker_url=redis_url,
            tmp_path=tmp_path,
            queues=[gpu_class.queue_for(Tier.BATCH)],
            DATABASE_URL=database_url(),
            MEDIA_ROOT=str(tmp_path / "media"),
            JOBS_HEARTBEAT_S="0.5",
        ) as worker,
    ):
        assert services.jobs_sweep() == {
            "dispatched": 1,
            "requeued": 0,
            "cancelled": 0,
            "failed": 0,
        }
        # Sent once: a second sweep leaves the dispatched job to its worker.
        assert services.jobs_sweep()["dispatched"] == 0
        deadline = time.monotonic() + 20
        while job.state != JobState.SUCCEEDED:
            assert time.monotonic() < deadline, (job.state, worker.log.read_text()[-3000:])
            time.sleep(0.1)
            job.refresh_from_db()

    assert job.dispatched_at is not None and job.attempts == 1
    assert (tmp_path / "media" / "jobs" / str(job.pk) / "result.txt").read_text() == "sent late"
