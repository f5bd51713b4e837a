import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from departments.models import GpuClass

pytestmark = pytest.mark.django_db


def test_queue_prefix_defaults_to_gpu_and_the_slug():
    gpu = GpuClass.objects.create(name="H100", slug="h100", model_regex=".*H100.*", capacity_gpus=4)
    assert gpu.queue_prefix == "gpu.h100"
    assert gpu.queue_for("realtime") == "gpu.h100.realtime"


def test_database_refuses_a_class_without_capacity():
    with pytest.raises(IntegrityError), transaction.atomic():
        GpuClass.objects.create(name="L4", slug="l4", model_regex=".*L4.*", capacity_gpus=0)


@pytest.mark.parametrize(
    ("regex", "why"),
    [
        ("A100[", "Not a valid regular expression"),
        ("(?=A100).*", "no look-around"),
        (r"(A)\1", "back-references"),
    ],
)
def test_a_model_regex_prometheus_cannot_run_is_refused(regex, why):
    gpu = GpuClass(name="X", slug="x", model_regex=regex, capacity_gpus=1)
    with pytest.raises(ValidationError) as refused:
        gpu.full_clean()
    assert why in refused.value.message_dict["model_regex"][0]


def test_api_fills_the_queue_prefix_and_refuses_a_taken_one(world, api_client):
    api_client.force_login(world.user("it_admin"))
    created = api_client.post(
        "/api/v1/gpu-classes/",
        {"name": "H100", "slug": "h100", "model_regex": ".*H100.*", "capacity_gpus": 4},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["queue_prefix"] == "gpu.h100"

    clash = api_client.post(
        "/api/v1/gpu-classes/",
        {
            "name": "H200",
            "slug": "h200",
            "model_regex": ".*H200.*",
            "capacity_gpus": 4,
            "queue_prefix": "gpu.h100",
        },
        format="json",
    )
    assert clash.status_code == 400
    assert "queue_prefix" in clash.json()
