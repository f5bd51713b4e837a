from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from departments.models import Enforcement, Quota, QuotaKind
from tests.factories import DepartmentFactory, GpuClassFactory, QuotaFactory

pytestmark = pytest.mark.django_db


def _create(**fields):
    defaults = {"department": DepartmentFactory(), "kind": QuotaKind.JOBS_DAY, "limit": Decimal(5)}
    with transaction.atomic():
        return Quota.objects.create(**{**defaults, **fields})


@pytest.mark.parametrize("limit", [Decimal(0), Decimal(-3)])
def test_database_refuses_a_limit_that_is_not_positive(limit):
    with pytest.raises(IntegrityError):
        _create(limit=limit)


@pytest.mark.parametrize("kind", [QuotaKind.JOBS_DAY, QuotaKind.CONCURRENT_JOBS, QuotaKind.GPUS])
def test_database_refuses_a_fractional_count(kind):
    with pytest.raises(IntegrityError):
        _create(kind=kind, limit=Decimal("2.5"))


def test_a_gpu_hours_budget_may_be_fractional():
    quota = _create(kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("1250.5"))
    assert Quota.objects.get(pk=quota.pk).limit == Decimal("1250.5")


@pytest.mark.parametrize(("field", "value"), [("kind", "per_fortnight"), ("enforcement", "maybe")])
def test_database_refuses_an_unknown_kind_or_enforcement(field, value):
    with pytest.raises(IntegrityError):
        _create(**{field: value})


def test_database_refuses_two_quotas_of_one_kind_on_the_same_scope():
    first = QuotaFactory(kind=QuotaKind.JOBS_DAY, job_kind="lipsync-render")
    with pytest.raises(IntegrityError):
        _create(department=first.department, kind=QuotaKind.JOBS_DAY, job_kind="lipsync-render")


def test_the_same_kind_may_be_narrowed_to_different_scopes():
    department, a100 = DepartmentFactory(), GpuClassFactory()
    _create(department=department, kind=QuotaKind.GPUS)
    _create(department=department, kind=QuotaKind.GPUS, gpu_class=a100)
    _create(department=department, kind=QuotaKind.GPUS, job_kind="llm-generate")
    assert department.quotas.count() == 3


def test_validation_explains_a_duplicate_scope_in_words():
    first = QuotaFactory(kind=QuotaKind.GPUS, limit=4)
    duplicate = Quota(department=first.department, kind=QuotaKind.GPUS, limit=Decimal(2))
    with pytest.raises(ValidationError) as refused:
        duplicate.full_clean()
    assert refused.value.messages == [
        "This department already has a quota of this kind for the same job kind and GPU class."
    ]


@pytest.mark.parametrize("thresholds", [[100, 80], [0], [80, 80], ["80"], [1001]])
def test_alert_thresholds_must_be_increasing_whole_percentages(thresholds):
    quota = Quota(department=DepartmentFactory(), kind=QuotaKind.GPUS, limit=Decimal(2))
    quota.alert_thresholds_pct = thresholds
    with pytest.raises(ValidationError) as refused:
        quota.full_clean()
    assert "alert_thresholds_pct" in refused.value.message_dict


def test_unit_and_period_follow_the_kind():
    described = {
        kind: (Quota(kind=kind).unit, Quota(kind=kind).period) for kind in QuotaKind.values
    }
    assert described == {
        "gpu_hours_month": ("GPU-hours", "month"),
        "jobs_day": ("jobs", "day"),
        "concurrent_jobs": ("jobs", None),
        "gpus": ("GPUs", None),
    }


def test_api_refuses_a_fractional_job_count_with_the_models_words(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/quotas/",
        {"department": "marketing", "kind": "gpus", "limit": "2.5", "enforcement": "soft"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Jobs and GPUs are counted in whole numbers."]}


def test_api_refuses_a_duplicate_scope(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/quotas/",
        {"department": "marketing", "kind": "jobs_day", "job_kind": "lipsync-render", "limit": "9"},
        format="json",
    )
    assert response.status_code == 400
    assert "already has a quota of this kind" in response.json()["non_field_errors"][0]
    assert world.marketing.quotas.get(kind="jobs_day").limit == Decimal(50)


def test_api_creates_a_narrowed_quota_with_its_unit_and_period(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/quotas/",
        {
            "department": "marketing",
            "kind": "gpu_hours_month",
            "gpu_class": "a100",
            "limit": "300.5",
            "enforcement": Enforcement.HARD_REJECT,
            "alert_thresholds_pct": [50, 90],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["limit"], body["unit"], body["period"], body["gpu_class"]) == (
        "300.500",
        "GPU-hours",
        "month",
        "a100",
    )
    assert Quota.objects.get(pk=body["id"]).alert_thresholds_pct == [50, 90]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "lots"}, "limit"),
        ({"kind": "weekly"}, "kind"),
        ({"alert_thresholds_pct": [90, 80]}, "alert_thresholds_pct"),
        ({"department": "nowhere"}, "department"),
        ({"gpu_class": "h900"}, "gpu_class"),
    ],
)
def test_api_names_the_field_that_is_wrong(world, api_client, payload, field):
    api_client.force_login(world.user("it_admin"))
    body = {"department": "marketing", "kind": "gpus", "limit": "2", **payload}
    response = api_client.post("/api/v1/quotas/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Quota.objects.count() == 2
