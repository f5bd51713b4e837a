"""Fractions of GPUs: a MIG profile (1g.10gb is 1/7 of an A100) or a time-sliced replica
(1/4 of a T4 shared four ways) is its own GPU class with its own rate card; its GPU time
counts as that fraction of its physical GPU for capacity and idle, so each physical GPU is
counted once, whatever it is cut into."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing import selectors, services
from billing.models import LineKind, Statement, StatementLine
from departments.models import GpuClass
from metering.services import GpuClassResolver
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)
HOURS_IN_MARCH = 744


@pytest.fixture
def cut(db):
    a100 = factories.GpuClassFactory(
        slug="a100", name="A100", model_regex=".*A100.*", capacity_gpus=1
    )
    mig = factories.GpuClassFactory(
        slug="a100-1g", name="A100 1g.10gb", model_regex=".*A100.*", capacity_gpus=0,
        physical_class=a100, fraction_numerator=1, fraction_denominator=7, mig_profile="1g.10gb",
    )  # fmt: skip
    t4 = factories.GpuClassFactory(slug="t4", name="T4", model_regex=".*T4.*", capacity_gpus=1)
    shared = factories.GpuClassFactory(
        slug="t4-shared", name="T4 shared by 4", model_regex="Tesla-T4-SHARED", capacity_gpus=0,
        physical_class=t4, fraction_numerator=1, fraction_denominator=4,
    )  # fmt: skip
    for gpu_class, price in ((a100, "7.00"), (mig, "1.20"), (t4, "0.40"), (shared, "0.12")):
        factories.RateCardFactory(gpu_class=gpu_class, price_per_gpu_hour=Decimal(price))
    return a100, mig, t4, shared


def test_each_physical_gpu_is_counted_once_whatever_it_is_cut_into(cut, ledger):
    _a100, mig, _t4, shared = cut
    marketing = factories.DepartmentFactory(slug="marketing")
    # Seven 1g.10gb instances for an hour fill the A100; two T4 replicas are half a T4.
    ledger.add(at=hour(2, 10), gpu_hours="7", department=marketing, gpu_class=mig)
    ledger.add(at=hour(2, 10), gpu_hours="2", department=marketing, gpu_class=shared)
    period = services.period_refresh(month=MARCH)

    lines = {
        line.gpu_class.slug: (line.gpu_hours, line.amount)
        for line in StatementLine.objects.filter(period=period, kind=LineKind.USAGE)
    }
    # Each class at its own card: 7 instance-hours × 1.20, 2 replica-hours × 0.12.
    assert lines == {
        "a100-1g": (Decimal("7.00"), Decimal("8.40")),
        "t4-shared": (Decimal("2.00"), Decimal("0.24")),
    }
    # Capacity: one A100 and one T4, every hour, counted once each.
    assert period.capacity_gpu_hours == 2 * HOURS_IN_MARCH
    idle = {
        line.gpu_class.slug: line.gpu_hours
        for line in StatementLine.objects.filter(period=period, kind=LineKind.IDLE)
    }
    # The A100 was full for the hour; the T4 was half used.
    assert idle == {
        "a100": Decimal(HOURS_IN_MARCH - 1),
        "t4": Decimal(HOURS_IN_MARCH) - Decimal("0.5"),
    }
    assert selectors.reconciliation(period=period).difference == 0
    assert Statement.objects.get(period=period, department=marketing).total == Decimal("8.64")


def test_more_instances_than_fit_count_the_physical_gpu_as_fully_used(cut, ledger):
    _, mig, _, _ = cut
    marketing = factories.DepartmentFactory(slug="marketing")
    ledger.add(at=hour(2, 10), gpu_hours="8", department=marketing, gpu_class=mig)  # 8/7 of it
    period = services.period_refresh(month=MARCH)
    a100_idle = StatementLine.objects.get(period=period, kind=LineKind.IDLE, gpu_class__slug="a100")
    assert a100_idle.gpu_hours == HOURS_IN_MARCH - 1  # never below zero in the hour
    assert selectors.reconciliation(period=period).difference == 0


def test_the_resolver_reads_mig_profiles_and_shared_models(cut):
    _, mig, t4, shared = cut
    resolve = GpuClassResolver()
    assert resolve("NVIDIA-A100-SXM4-80GB MIG 1g_10gb") == mig.pk  # kube-state-metrics' name
    assert resolve("NVIDIA-A100-SXM4-80GB MIG 1g.10gb") == mig.pk  # DCGM's GPU_I_PROFILE
    assert resolve("NVIDIA-A100-SXM4-80GB MIG 3g_40gb") is None  # no class of that profile
    assert resolve("Tesla-T4-SHARED") == shared.pk  # the fraction before the whole T4
    assert resolve("Tesla-T4") == t4.pk


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"capacity_gpus": 2}, "has no capacity of its own"),
        ({"physical": None}, "needs the physical GPU class"),
        ({"fraction_numerator": 8}, "more than 0 and at most 1"),
        ({"physical": "fraction"}, "is itself a fraction"),
    ],
)
def test_a_fraction_of_a_gpu_is_cut_from_one_whole_gpu_class(cut, fields, error):
    a100, mig, _, _ = cut
    physical = {None: None, "fraction": mig}.get(fields.pop("physical", "a100"), a100)
    values = {
        "name": "A100 3g.40gb",
        "slug": "a100-3g",
        "model_regex": ".*A100.*",
        "capacity_gpus": 0,
        "physical_class": physical,
        "fraction_numerator": 3,
        "fraction_denominator": 7,
        "mig_profile": "3g.40gb",
    }
    candidate = GpuClass(**{**values, **fields})
    with pytest.raises(ValidationError, match=error):
        candidate.full_clean()


def test_it_adds_a_mig_class_through_the_api(world, api_client):
    response = client_as(api_client, world, "it_admin").post(
        "/api/v1/gpu-classes/",
        {
            "name": "A100 3g.40gb",
            "slug": "a100-3g",
            "model_regex": ".*A100.*",
            "capacity_gpus": 0,
            "physical_class": "a100",
            "fraction_numerator": 3,
            "fraction_denominator": 7,
            "mig_profile": "3g.40gb",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = GpuClass.objects.get(slug="a100-3g")
    assert (created.physical_class, created.fraction_display) == (world.a100, "3/7 of A100")
