"""POST /api/v1/jobs/ documents exactly the answers it gives: each status in its OpenAPI
responses is one a request can get (shown here, one request each), and a request gets no
status the schema leaves out. Someone outside the department gets 400 (it is not among
theirs), not 403: the only 403 is a browser session's write without its CSRF token."""

import time

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.conftest import client_as
from tests.jobs.conftest import quota

URL = "/api/v1/jobs/"
BODY = {
    "department": "marketing",
    "kind": "lipsync-render",
    "tier": "batch",
    "params": {"seconds": 2, "text": "hello"},
}


def _submitted(world, **headers):
    return client_as(APIClient(), world, "manager").post(URL, BODY, format="json", **headers)


def _created(world):
    return _submitted(world)


def _repeated_key(world):
    manager = client_as(APIClient(), world, "manager")
    manager.post(URL, {**BODY, "idempotency_key": "k-1"}, format="json")
    return manager.post(URL, {**BODY, "idempotency_key": "k-1"}, format="json")


def _outsider(world):
    # other_manager manages training only.
    return client_as(APIClient(), world, "other_manager").post(URL, BODY, format="json")


def _anonymous(world):
    return APIClient().post(URL, BODY, format="json")


def _session_without_csrf_token(world):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(world.user("manager"))
    return browser.post(URL, BODY, format="json")


def _unknown_format(world):
    return client_as(APIClient(), world, "manager").post(f"{URL}?format=pdf", BODY, format="json")


def _refused_by_quota(world):
    quota(world, "concurrent_jobs", 1, "hard_reject")
    return _submitted(world)


def _over_the_rate(world):
    manager = client_as(APIClient(), world, "manager")
    for _ in range(2):
        assert manager.post(URL, BODY, format="json").status_code == 201
    return manager.post(URL, BODY, format="json")


def _not_json(world):
    manager = client_as(APIClient(), world, "manager")
    return manager.post(URL, "department=marketing", content_type="text/plain")


def _asks_for_xml(world):
    return _submitted(world, HTTP_ACCEPT="application/xml")


ANSWERS = {
    200: _repeated_key,
    201: _created,
    400: _outsider,
    401: _anonymous,
    403: _session_without_csrf_token,
    404: _unknown_format,
    406: _asks_for_xml,
    409: _refused_by_quota,
    415: _not_json,
    429: _over_the_rate,
}


@pytest.fixture(autouse=True)
def two_jobs_a_minute(settings, monkeypatch):
    """At most two submissions a minute, on a clock that stands still (a fixed window
    would start again if the requests straddled its end)."""
    settings.JOBS_SUBMIT_RATE = "2/m"
    now_s = time.time()
    monkeypatch.setattr(time, "time", lambda: now_s)


def _documented() -> dict[str, dict]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return schema["paths"]["/api/v1/jobs/"]["post"]["responses"]


def test_the_schema_documents_exactly_the_answers_submission_gives(db):
    assert sorted(int(code) for code in _documented()) == sorted(ANSWERS)


@pytest.mark.parametrize("status", sorted(ANSWERS))
def test_each_documented_answer_is_one_a_submission_gets(world, status):
    response = ANSWERS[status](world)
    assert response.status_code == status, response.content[:300]


def test_a_department_outside_yours_is_a_400_and_the_403_is_the_csrf_token(world):
    documented = _documented()
    assert "CSRF" in documented["403"]["description"]
    assert "member" not in documented["403"]["description"]
    assert "not a manager or member of" in documented["400"]["description"]
    assert "among yours" in _outsider(world).json()["department"][0]
    assert "CSRF" in _session_without_csrf_token(world).json()["detail"]
