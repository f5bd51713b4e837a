"""A submission through POST /api/v1/jobs/ sends a fixed, small number of SQL queries,
whatever the department holds: queued at most 10 (with the dispatch after commit),
waiting at most 9, refused at most 8. Measured on PostgreSQL, the database admission
locks rows in, through the API with token authentication, as clients submit.

What each costs (queued): the token and its user; the user's departments; the department,
the kind (and the GPU class when the request names one) read by the request's
serializer; the service level with its GPU classes; the department's row locked with its
quotas; every quota's use, the waiting line and the idempotency key in one query; the
INSERT of the decided job; after commit, the dispatch's ``dispatched_at``. A waiting job
has no dispatch, and its place in line is known from the line admission read. A new
alert threshold adds its own reads and writes; none is reached here.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from departments.models import Quota
from jobs.models import GenerationJob, JobState
from tests import factories
from tests.jobs.conftest import quota

URL = "/api/v1/jobs/"
BUDGET = {"queued": 10, "waiting": 9, "refused": 8}

pytestmark = pytest.mark.usefixtures("postgres")


@pytest.fixture
def department(world):
    """Marketing with one quota of every kind that applies to a lip-sync render, none
    near an alert threshold, and work in it: a queued job, a finished one."""
    quota(world, "concurrent_jobs", 10, alert_thresholds_pct=[])
    quota(world, "gpus", 16, gpu_class=world.t4, alert_thresholds_pct=[])
    quota(world, "gpu_hours_month", 1000, "soft", alert_thresholds_pct=[90])
    quota(world, "gpu_hours_month", 500, "hard_reject", job_kind="lipsync-render")
    return world.marketing


@pytest.fixture
def client(world, department):
    client = APIClient()
    token = Token.objects.create(user=world.user("manager"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def submit(client, django_capture_on_commit_callbacks, key: str, **fields):
    """POST one lip-sync render with an idempotency key; the answer and the queries it
    sent, the dispatch after commit included."""
    body = {
        "department": "marketing",
        "kind": "lipsync-render",
        "tier": "batch",
        "params": {"seconds": 1, "text": "hello"},
        "idempotency_key": key,
        **fields,
    }
    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(URL, body, format="json")
    # The test runs in a transaction, so the admission's own becomes a savepoint: not a
    # query a real submission sends.
    sent = [query["sql"] for query in queries.captured_queries]
    return response, [sql for sql in sent if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def within(outcome: str, sent: list[str]) -> bool:
    assert len(sent) <= BUDGET[outcome], (
        f"a {outcome} submission sent {len(sent)} queries (budget {BUDGET[outcome]}):\n"
        + "\n".join(sent)
    )
    return True


def test_a_queued_submission_sends_at_most_10_queries(client, django_capture_on_commit_callbacks):
    response, sent = submit(client, django_capture_on_commit_callbacks, "q-1")
    assert (response.status_code, response.json()["state"]) == (201, "queued")
    assert GenerationJob.objects.get(pk=response.json()["id"]).dispatched_at is not None
    assert within("queued", sent)


def test_a_waiting_submission_sends_at_most_9_queries_and_knows_its_place(
    world, client, django_capture_on_commit_callbacks
):
    # The member's queued job fills it.
    Quota.objects.filter(department=world.marketing, kind="concurrent_jobs").update(limit=1)
    ahead = factories.GenerationJobFactory(
        department=world.marketing,
        submitter=world.user("member"),
        kind=world.lipsync,
        gpu_class=world.t4,
        state=JobState.WAITING,
    )
    response, sent = submit(client, django_capture_on_commit_callbacks, "w-1")
    job = response.json()
    assert (response.status_code, job["state"]) == (201, "waiting")
    assert job["waiting_position"] == 2  # behind the one waiting before it
    assert ahead.submitted_at < GenerationJob.objects.get(pk=job["id"]).submitted_at
    assert within("waiting", sent)


def test_a_refused_submission_sends_at_most_8_queries(
    world, client, django_capture_on_commit_callbacks
):
    quota(world, "jobs_day", 1, "hard_reject", alert_thresholds_pct=[])
    first, _ = submit(client, django_capture_on_commit_callbacks, "r-1")
    assert first.json()["state"] == "queued"
    response, sent = submit(client, django_capture_on_commit_callbacks, "r-2")
    assert response.status_code == 409
    assert response.json()["quota"]["kind"] == "jobs_day"
    assert within("refused", sent)


def test_naming_the_gpu_class_costs_the_serializer_one_lookup_more(
    client, django_capture_on_commit_callbacks
):
    _, chosen = submit(client, django_capture_on_commit_callbacks, "c-1")
    response, named = submit(client, django_capture_on_commit_callbacks, "c-2", gpu_class="t4")
    assert (response.status_code, response.json()["state"]) == (201, "queued")
    assert len(named) == len(chosen) + 1


def test_a_repeated_key_answers_the_first_job_within_the_queued_budget(
    client, django_capture_on_commit_callbacks
):
    first, _ = submit(client, django_capture_on_commit_callbacks, "k-1")
    again, sent = submit(client, django_capture_on_commit_callbacks, "k-1")
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    assert within("queued", sent)
