import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from demo.scenario import DEMO_PASSWORD
from departments.models import Department, GpuClass, Membership, OffPeakWindow, Quota, ServiceLevel
from jobs.models import JobKind

pytestmark = pytest.mark.django_db


def _snapshot() -> dict:
    """Every row of every model the demo touches, timestamps and password hashes included."""
    labels = ["departments", "auth", "jobs", "billing"]
    snapshot = {}
    for model in apps.get_models():
        if model._meta.app_label in labels:
            snapshot[model._meta.label] = sorted(map(repr, model.objects.values()))
    for through in (ServiceLevel.gpu_classes.through, get_user_model().groups.through):
        snapshot[through._meta.label] = sorted(map(repr, through.objects.values()))
    return snapshot


def _seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--force", stdout=out)
    return out.getvalue()


def test_seeding_twice_leaves_the_same_data():
    _seed()
    first = _snapshot()
    _seed()
    assert _snapshot() == first


def test_seeding_converges_after_someone_edited_the_demo():
    def allowed_classes():
        return sorted(
            ServiceLevel.gpu_classes.through.objects.values_list("servicelevel_id", "gpuclass_id")
        )

    _seed()
    before = allowed_classes()
    Quota.objects.filter(department__slug="marketing", kind="jobs_day").update(limit=7)
    ServiceLevel.objects.get(
        department__slug="customer-service", tier="realtime"
    ).gpu_classes.clear()
    JobKind.objects.filter(slug="cpu-load").update(active=False, argv_template=["true"])
    _seed()
    assert allowed_classes() == before
    assert Quota.objects.get(department__slug="marketing", kind="jobs_day").limit == 50
    cpu_load = JobKind.objects.get(slug="cpu-load")
    assert cpu_load.active
    assert cpu_load.argv_template == [
        "{python}",
        "-m",
        "demo.programs.cpu_load",
        "--seconds",
        "{seconds}",
    ]


def test_the_demo_is_the_scenario_the_portal_exists_for():
    _seed()
    assert sorted(Department.objects.values_list("slug", "namespaces__name")) == [
        ("customer-service", "dept-customer-service"),
        ("marketing", "dept-marketing"),
        ("training", "dept-training"),
    ]
    assert sorted(GpuClass.objects.values_list("slug", "capacity_gpus")) == [
        ("a100", 8),
        ("t4", 16),
    ]

    assert sorted(JobKind.objects.values_list("slug", flat=True)) == [
        "cpu-load",
        "lipsync-render",
        "speech-synthesis",
        "video-render",
    ]
    lipsync = Quota.objects.get(department__slug="marketing", kind="jobs_day")
    assert (lipsync.job_kind, lipsync.limit, lipsync.enforcement) == (
        "lipsync-render",
        50,
        "hard_queue",
    )

    realtime = ServiceLevel.objects.get(department__slug="customer-service", tier="realtime")
    assert max(ServiceLevel.objects.values_list("priority", flat=True)) == realtime.priority
    assert realtime.latency_target_ms == 800
    assert [g.slug for g in realtime.gpu_classes.all()] == ["a100"]

    for batch in ServiceLevel.objects.filter(tier="batch"):
        assert [g.slug for g in batch.gpu_classes.all()] == ["t4"]
        assert batch.hold_for_off_peak

    (night,) = OffPeakWindow.objects.all()
    assert (night.start_time.hour, night.end_time.hour, str(night.price_multiplier)) == (
        23,
        7,
        "0.600",
    )

    budgets = Quota.objects.filter(kind="gpu_hours_month").values_list(
        "department__slug", flat=True
    )
    assert sorted(budgets) == ["customer-service", "marketing", "training"]


def test_every_printed_login_works_and_has_its_role(client):
    output = _seed()
    assert f"password is {DEMO_PASSWORD}" in output
    expected = {
        "finance": ("finance", None),
        "it-admin": ("it-admin", None),
        "marketing-manager": (None, "manager"),
        "marketing-member": (None, "member"),
        "cs-manager": (None, "manager"),
        "cs-member": (None, "member"),
        "training-manager": (None, "manager"),
        "training-member": (None, "member"),
    }
    for username, (group, role) in expected.items():
        assert username in output
        assert client.login(username=username, password=DEMO_PASSWORD), username
        user = get_user_model().objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == ([group] if group else [])
        assert list(Membership.objects.filter(user=user).values_list("role", flat=True)) == (
            [role] if role else []
        )


def test_seeding_refuses_when_debug_is_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="published password"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not Department.objects.exists()


def test_the_demo_prices_the_fleet_with_a_realtime_premium_and_a_subsidy():
    from billing.models import DepartmentMultiplier, RateCard
    from departments.models import Namespace

    _seed()
    prices = {
        (card.gpu_class.slug, card.tier): card.price_per_gpu_hour
        for card in RateCard.objects.select_related("gpu_class")
    }
    assert prices == {
        ("a100", ""): Decimal("3.20"),
        ("a100", "realtime"): Decimal("4.00"),
        ("t4", ""): Decimal("0.55"),
    }
    assert Namespace.objects.get(name="dept-customer-service").tier == "realtime"
    (subsidy,) = DepartmentMultiplier.objects.all()
    assert (subsidy.department.slug, subsidy.multiplier) == ("training", Decimal("0.8"))
