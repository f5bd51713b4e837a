import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from departments.models import GpuClass, ServiceLevel, Tier
from departments.services import gpu_class_delete
from tests.factories import DepartmentFactory, GpuClassFactory, ServiceLevelFactory

pytestmark = pytest.mark.django_db


def _create(**fields):
    defaults = {"department": DepartmentFactory(), "tier": Tier.BATCH, "priority": 1}
    with transaction.atomic():
        return ServiceLevel.objects.create(**{**defaults, **fields})


def test_database_refuses_a_second_service_level_for_a_tier():
    first = ServiceLevelFactory(tier=Tier.BATCH)
    with pytest.raises(IntegrityError):
        _create(department=first.department, tier=Tier.BATCH)


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": 10},
        {"latency_target_ms": 0},
        {"max_queue_wait_s": 0},
        {"tier": "whenever"},
        {"tier": Tier.INTERACTIVE, "hold_for_off_peak": True},
        {"tier": Tier.REALTIME, "preemptible": True},
    ],
    ids=["priority", "latency", "wait", "tier", "off-peak-not-batch", "realtime-preemptible"],
)
def test_database_refuses_a_service_level_that_breaks_a_rule(fields):
    with pytest.raises(IntegrityError):
        _create(**fields)


def test_validation_says_why_realtime_cannot_be_preempted():
    sla = ServiceLevel(
        department=DepartmentFactory(), tier=Tier.REALTIME, priority=9, preemptible=True
    )
    with pytest.raises(ValidationError) as refused:
        sla.full_clean()
    assert refused.value.messages == ["Realtime work is never preempted."]


def test_queues_are_named_after_the_gpu_class_and_the_tier(world, api_client):
    api_client.force_login(world.user("manager"))
    body = api_client.get(f"/api/v1/service-levels/{world.marketing_sla.pk}/").json()
    assert body["queues"] == ["gpu.t4.batch"]
    training = world.training_sla
    assert sorted(g.queue_for(training.tier) for g in training.gpu_classes.all()) == [
        "gpu.a100.interactive",
        "gpu.t4.interactive",
    ]


def test_api_refuses_a_service_level_without_gpu_classes(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/service-levels/",
        {"department": "marketing", "tier": "realtime", "priority": 9, "gpu_classes": []},
        format="json",
    )
    assert response.status_code == 400
    assert "gpu_classes" in response.json()


def test_api_refuses_a_second_service_level_for_a_tier(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.post(
        "/api/v1/service-levels/",
        {"department": "marketing", "tier": "batch", "priority": 1, "gpu_classes": ["t4"]},
        format="json",
    )
    assert response.status_code == 400
    assert world.marketing.service_levels.count() == 1


def test_a_gpu_class_an_sla_allows_cannot_be_deleted(world):
    with pytest.raises(ProtectedError):
        gpu_class_delete(gpu_class=world.a100)
    assert list(world.training_sla.gpu_classes.order_by("slug").values_list("slug", flat=True)) == [
        "a100",
        "t4",
    ]


def test_api_explains_why_a_gpu_class_in_use_cannot_be_deleted(world, api_client):
    api_client.force_login(world.user("it_admin"))
    response = api_client.delete("/api/v1/gpu-classes/a100/")
    assert response.status_code == 409
    assert response.json()["detail"].endswith("Training: Interactive")
    assert GpuClass.objects.filter(slug="a100").exists()


def test_a_gpu_class_nothing_uses_can_be_deleted(world, api_client):
    GpuClassFactory(slug="v100")
    api_client.force_login(world.user("it_admin"))
    assert api_client.delete("/api/v1/gpu-classes/v100/").status_code == 204
    assert not GpuClass.objects.filter(slug="v100").exists()
