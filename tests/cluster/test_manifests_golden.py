"""The demo fleet's kustomize directory, byte for byte (tests/cluster/golden/default/), and
what a change in the portal changes there: exactly the objects it concerns, by exactly the
lines it concerns.

When a change of the rendering is meant, regenerate the golden files and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/cluster/test_manifests_golden.py
    git diff tests/cluster/golden/
"""

import datetime as dt
import difflib
import os
from decimal import Decimal
from pathlib import Path

from django.core.management import call_command

from cluster import manifests
from departments.models import Department, GpuClass, Quota, QuotaKind
from departments.services import department_set_namespaces
from tests import factories
from tests.cluster.conftest import AT, NEXT_MONTH, files

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = (
    "If the change is meant, regenerate the golden files and review the diff: "
    "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/cluster/test_manifests_golden.py "
    "&& git diff tests/cluster/golden/"
)


def _read(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


def _diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines ``before`` loses and ``after`` gains."""
    lines = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return (
        [line[2:] for line in lines if line.startswith("- ")],
        [line[2:] for line in lines if line.startswith("+ ")],
    )


def _marketing_budget() -> Quota:
    return Quota.objects.get(
        department__slug="marketing", kind=QuotaKind.GPU_HOURS_MONTH, gpu_class=None, job_kind=""
    )


def _spend(slug: str, gpu_hours: Decimal) -> None:
    """A job of ``slug``'s that finished an hour before AT after ``gpu_hours`` GPU-hours."""
    factories.GenerationJobFactory(
        department=Department.objects.get(slug=slug),
        gpu_class=GpuClass.objects.get(slug="t4"),
        state="succeeded",
        started_at=AT - dt.timedelta(hours=2),
        finished_at=AT - dt.timedelta(hours=1),
        gpu_seconds=gpu_hours * 3600,
    )


# --- (a) The demo, byte for byte -------------------------------------------------------------


def test_the_demo_renders_the_golden_files_and_the_same_bytes_twice(demo, tmp_path):
    call_command("cluster_manifests", "--out", str(tmp_path / "first"))
    call_command("cluster_manifests", "--out", str(tmp_path / "second"))
    assert sorted(p.name for p in (tmp_path / "first").iterdir()) == ["default"]
    first = _read(tmp_path / "first" / "default")
    assert first == _read(tmp_path / "second" / "default")
    if UPDATE:
        call_command("cluster_manifests", "--out", str(GOLDEN))
        print(f"Golden files written to {GOLDEN}; review them with git diff.")
    golden = _read(GOLDEN / "default")
    assert sorted(first) == sorted(golden), f"Other files than the golden ones. {REGENERATE}"
    for name in golden:
        assert first[name] == golden[name], f"{name} differs from its golden file. {REGENERATE}"


def test_the_golden_files_are_what_render_returns(demo):
    """What the command writes is what ``render`` returns, at any moment of a month without
    use (the demo has none)."""
    golden = {n: b.decode() for n, b in _read(GOLDEN / "default").items()}
    assert files(AT) == golden
    assert files(NEXT_MONTH) == golden


# --- (b) A quota's number --------------------------------------------------------------------


def test_marketings_t4_gpus_from_8_to_6_changes_two_files_by_that_number(demo):
    before = files(AT)
    quota = Quota.objects.get(department__slug="marketing", kind=QuotaKind.GPUS)
    assert (quota.gpu_class.slug, quota.limit) == ("t4", 8)
    quota.limit = 6
    quota.save()
    after = files(AT)
    quota_file, queue_file = "resourcequota_dept-marketing_gpu.yaml", "clusterqueue_marketing.yaml"
    assert _changed(before, after) == {quota_file, queue_file}
    assert _diff(before[quota_file], after[quota_file]) == (
        ["    requests.nvidia.com/gpu: '8'"],
        ["    requests.nvidia.com/gpu: '6'"],
    )
    # Marketing keeps no T4 of its own (no realtime work): it borrows up to its quota.
    assert _diff(before[queue_file], after[queue_file]) == (
        ["        borrowingLimit: 8"],
        ["        borrowingLimit: 6"],
    )


# --- (c) A namespace more --------------------------------------------------------------------


def test_a_namespace_more_adds_its_objects_and_a_line_each_to_kustomization(demo):
    before = files(AT)
    marketing = Department.objects.get(slug="marketing")
    department_set_namespaces(department=marketing, namespaces=["dept-marketing", "dept-promo"])
    after = files(AT)
    added = {
        "namespace_dept-promo.yaml",
        "resourcequota_dept-promo_gpu.yaml",
        "localqueue_dept-promo_marketing.yaml",
    }
    assert after.keys() - before.keys() == added
    assert before.keys() - after.keys() == set()
    assert _changed(before, after) == added | {"kustomization.yaml"}
    lost, gained = _diff(before["kustomization.yaml"], after["kustomization.yaml"])
    assert (lost, sorted(gained)) == ([], sorted(f"- {n}" for n in added))
    # The new namespace's objects are the first namespace's, renamed.
    for kind, name in (
        ("namespace", "{}.yaml"),
        ("resourcequota", "{}_gpu.yaml"),
        ("localqueue", "{}_marketing.yaml"),
    ):
        old = before[f"{kind}_{name.format('dept-marketing')}"]
        new = after[f"{kind}_{name.format('dept-promo')}"]
        assert new == old.replace("dept-marketing", "dept-promo")


def test_a_namespace_more_of_a_department_without_hard_gpus_has_no_resourcequota(demo):
    before = files(AT)
    customer_service = Department.objects.get(slug="customer-service")
    department_set_namespaces(
        department=customer_service, namespaces=["dept-customer-service", "dept-voice"]
    )
    after = files(AT)
    assert after.keys() - before.keys() == {
        "namespace_dept-voice.yaml",
        "localqueue_dept-voice_customer-service.yaml",
    }
    assert _changed(before, after) == (after.keys() - before.keys()) | {"kustomization.yaml"}


# --- (d) A monthly budget spent --------------------------------------------------------------


def test_a_spent_hard_budget_holds_only_marketings_queue_until_next_month(demo):
    before = files(AT)
    assert _marketing_budget().limit == 1200
    _spend("marketing", Decimal(1200))
    fleet = manifests.render(at=AT)
    assert fleet.clusters[0].holds == {"marketing": ["1200 of 1200 GPU-hours used this month"]}
    after = files(AT)
    assert _changed(before, after) == {"clusterqueue_marketing.yaml"}
    assert _diff(before["clusterqueue_marketing.yaml"], after["clusterqueue_marketing.yaml"]) == (
        [],
        ["  stopPolicy: Hold"],
    )
    assert files(NEXT_MONTH) == before


def test_a_budget_not_quite_spent_holds_nothing(demo):
    before = files(AT)
    _spend("marketing", Decimal("1199.99"))
    assert files(AT) == before


def test_a_larger_budget_lifts_the_hold(demo):
    before = files(AT)
    _spend("marketing", Decimal(1200))
    assert files(AT) != before
    budget = _marketing_budget()
    budget.limit = Decimal(1500)
    budget.save()
    assert files(AT) == before


def test_a_soft_budget_spent_never_holds(demo):
    before = files(AT)
    # Customer Service's 4000 GPU-hours are soft in the demo.
    _spend("customer-service", Decimal(5000))
    assert files(AT) == before
    # Marketing's, made soft, neither.
    _spend("marketing", Decimal(2000))
    budget = _marketing_budget()
    budget.enforcement = "soft"
    budget.save()
    assert files(AT) == before
    assert manifests.render(at=AT).clusters[0].holds == {}
