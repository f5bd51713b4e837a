"""POST /api/v1/jobs/: the answers a client acts on (201, 200 on a repeated idempotency
key, 400 with field errors, 409 naming the quota), and queue routing."""

import csv
import io
import json

import pytest

from jobs.models import GenerationJob
from tests import factories
from tests.conftest import client_as
from tests.jobs.conftest import quota

URL = "/api/v1/jobs/"


def body(**overrides):
    data = {
        "department": "marketing",
        "kind": "lipsync-render",
        "tier": "batch",
        "params": {"seconds": 2, "text": "hello"},
    }
    data.update(overrides)
    return data


@pytest.fixture
def manager(world, api_client):
    return client_as(api_client, world, "manager")


def test_admitted_job_answers_201_with_its_state_and_location(manager):
    response = manager.post(URL, body(), format="json")
    assert response.status_code == 201
    job = response.json()
    assert (job["state"], job["gpu_class"], job["submitter"]) == ("queued", "t4", "mara")
    assert job["params"] == {"seconds": 2, "text": "hello"}
    assert response["Location"].endswith(f"/api/v1/jobs/{job['id']}/")


def test_repeated_idempotency_key_returns_the_first_job(manager):
    first = manager.post(URL, body(idempotency_key="render-42"), format="json")
    again = manager.post(URL, body(idempotency_key="render-42", params={}), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert GenerationJob.objects.filter(idempotency_key="render-42").count() == 1


def test_same_idempotency_key_in_another_department_is_another_job(world, api_client):
    factories.MembershipFactory(user=world.user("manager"), department=world.training)
    client = client_as(api_client, world, "manager")
    a = client.post(URL, body(idempotency_key="k"), format="json")
    b = client.post(
        URL, body(idempotency_key="k", department="training", tier="interactive"), format="json"
    )
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


def test_refused_job_answers_409_naming_the_quota_its_limit_and_use(world, manager):
    refusing = quota(world, "concurrent_jobs", 1, "hard_reject")
    response = manager.post(URL, body(), format="json")
    assert response.status_code == 409
    answer = response.json()
    assert answer["quota"] == {
        "id": refusing.pk,
        "kind": "concurrent_jobs",
        "job_kind": "",
        "gpu_class": None,
        "enforcement": "hard_reject",
        "limit": "1.000",
        "use": "1.000",
        "unit": "jobs",
    }
    assert answer["detail"].startswith("Refused by the quota Jobs queued or running at once")
    assert answer["job"]["state"] == "rejected"


def test_repeating_a_refused_submission_answers_409_again_without_a_second_job(world, manager):
    quota(world, "concurrent_jobs", 1, "hard_reject")
    first = manager.post(URL, body(idempotency_key="x"), format="json")
    again = manager.post(URL, body(idempotency_key="x"), format="json")
    assert (first.status_code, again.status_code) == (409, 409)
    assert GenerationJob.objects.filter(idempotency_key="x").count() == 1


def test_waiting_job_answers_201_with_the_reason_and_its_position(world, manager):
    quota(world, "concurrent_jobs", 1)
    job = manager.post(URL, body(), format="json").json()
    assert job["state"] == "waiting"
    assert job["waiting_position"] == 1
    assert "Waiting for the quota Jobs queued or running at once" in job["reason"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"params": {"seconds": "soon"}}, "params", "seconds: 'soon' is not of type 'number'"),
        ({"params": {"seconds": 900}}, "params", "seconds: 900 is greater than the maximum"),
        ({"params": {"voice": "x"}}, "params", "voice: Unknown parameter"),
        ({"params": {"text": "--output=/etc/passwd"}}, "params", "May not start with “-”"),
        ({"params": ["not", "an", "object"]}, "params", "Give the parameters as an object"),
        ({"tier": "urgent"}, "tier", "is not a valid choice"),
        ({"tier": "realtime"}, "tier", "Marketing has no service level for realtime work"),
        ({"gpu_class": "a100"}, "gpu_class", "allows t4, not a100"),
        ({"gpu_class": "h100"}, "gpu_class", "No GPU class “h100”."),
        ({"kind": "nope"}, "kind", "No job kind “nope”; GET /api/v1/job-kinds/ lists them."),
        ({"department": "training"}, "department", "you submit only for your own"),
    ],
)
def test_invalid_submission_answers_400_with_the_field_and_a_clear_message(
    manager, overrides, field, words
):
    response = manager.post(URL, body(**overrides), format="json")
    assert response.status_code == 400
    messages = " ".join(str(m) for m in response.json()[field])
    assert words in messages
    assert GenerationJob.objects.count() == 2  # the world's two jobs, nothing new


def test_inactive_kind_refuses_new_jobs(world, manager):
    world.lipsync.active = False
    world.lipsync.save()
    response = manager.post(URL, body(), format="json")
    assert response.status_code == 400
    assert "switched off" in response.json()["kind"][0]


def test_kind_that_does_not_allow_the_tier_is_refused(world, manager):
    world.lipsync.allowed_tiers = ["realtime"]
    world.lipsync.save()
    response = manager.post(URL, body(), format="json")
    assert response.status_code == 400
    assert "runs as realtime, not batch" in response.json()["tier"][0]


def test_job_goes_to_its_class_and_tier_queue_with_the_sla_priority(world, manager):
    factories.ServiceLevelFactory(
        department=world.marketing, tier="realtime", priority=9, gpu_classes=[world.a100]
    )
    job = GenerationJob.objects.get(
        pk=manager.post(URL, body(tier="realtime"), format="json").json()["id"]
    )
    assert (job.queue, job.priority, job.gpu_class.slug) == ("gpu.a100.realtime", 9, "a100")


def test_without_a_class_the_allowed_class_with_most_free_gpus_is_chosen(world, api_client):
    client = client_as(api_client, world, "other_manager")  # training: a100 (8) and t4 (16)
    job = client.post(URL, body(department="training", tier="interactive"), format="json").json()
    assert job["gpu_class"] == "t4"


def test_job_list_filters_by_state_kind_and_department(world, manager):
    manager.post(URL, body(), format="json")
    listed = manager.get(URL, {"state": "queued", "kind": "lipsync-render"}).json()
    assert listed["count"] == 2  # the member's queued job and the new one
    assert manager.get(URL, {"state": "succeeded"}).json()["count"] == 1
    refused = manager.get(URL, {"department": "training"})
    assert refused.status_code == 400


def test_a_job_that_is_not_there_is_not_found_without_naming_the_model(manager):
    response = manager.get(f"{URL}00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "Not found: it does not exist, or is not among those you can see."
    }


def test_the_jobs_csv_has_the_same_columns_whatever_the_jobs_listed(world, manager):
    GenerationJob.objects.filter(pk=world.member_job.pk).update(
        params={"voice": "anna", "text": "=1+1"}
    )

    def table(**query):
        response = manager.get(URL, {"format": "csv", **query})
        assert response.status_code == 200
        return list(csv.reader(io.StringIO(response.content.decode())))

    everything = table()
    finished = table(state="succeeded")
    nothing = table(state="failed")

    header = everything[0]
    assert finished[0] == header and nothing == [header]
    assert header[:4] == ["id", "department", "submitter", "kind"]
    assert "params" in header and "outputs" in header
    assert not [column for column in header if "." in column]  # nothing flattened
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in everything[1:]}
    assert json.loads(rows[str(world.member_job.pk)]["params"]) == {"text": "=1+1", "voice": "anna"}
    assert rows[str(world.manager_job.pk)]["outputs"] == "result.txt job.log"
