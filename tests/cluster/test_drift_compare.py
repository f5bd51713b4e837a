"""What the portal renders for a cluster, against what Prometheus shows of it: each kind of
difference is a finding that names the object, the field, what is wanted and what is
found; an object with no series is missing."""

from decimal import Decimal

import pytest

from cluster import drift, manifests
from cluster.drift import Finding
from cluster.models import Verdict
from departments.models import Enforcement, QuotaKind, Tier
from tests import factories
from tests.cluster.drift_world import drift_world, observed_in_sync


@pytest.fixture
def rendered(db):
    drift_world()
    (cluster,) = manifests.render().clusters
    return cluster


def test_a_cluster_holding_what_was_rendered_is_in_sync_for_every_department(rendered):
    findings = drift.compare(rendered, observed_in_sync())

    assert findings == {
        "held": [],
        "insync": [],
        "lifted": [],
        "marketing": [],
        "research": [],
    }
    assert {drift.verdict(f) for f in findings.values()} == {Verdict.IN_SYNC}


def test_a_hand_edited_quota_is_drift_with_what_is_wanted_and_found(rendered):
    observed = observed_in_sync()
    observed.quotas[("dept-marketing", "gpu")]["requests.nvidia.com/gpu"] = {Decimal(12)}

    findings = drift.compare(rendered, observed)

    assert findings["marketing"] == [
        Finding("ResourceQuota", "dept-marketing", "gpu", "hard requests.nvidia.com/gpu", "8", "12")
    ]
    assert drift.verdict(findings["marketing"]) == Verdict.DRIFTED
    assert findings["insync"] == []


def test_a_limit_added_by_hand_to_the_quota_is_drift(rendered):
    observed = observed_in_sync()
    observed.quotas[("dept-insync", "gpu")]["requests.nvidia.com/mig-1g.10gb"] = {Decimal(3)}

    assert drift.compare(rendered, observed)["insync"] == [
        Finding(
            "ResourceQuota",
            "dept-insync",
            "gpu",
            "hard requests.nvidia.com/mig-1g.10gb",
            "(not set)",
            "3",
        )
    ]


def test_a_changed_or_removed_namespace_label_is_drift(rendered):
    observed = observed_in_sync()
    labels = observed.namespace_labels["dept-marketing"]
    labels["label_gpu_chargeback_portal_cost_centre"] = {"CC-9999"}
    labels["label_app_kubernetes_io_managed_by"] = {""}

    assert drift.compare(rendered, observed)["marketing"] == [
        Finding(
            "Namespace",
            "",
            "dept-marketing",
            "label app.kubernetes.io/managed-by",
            "gpu-chargeback-portal",
            "absent",
        ),
        Finding(
            "Namespace",
            "",
            "dept-marketing",
            "label gpu-chargeback-portal/cost-centre",
            "CC-4100",
            "CC-9999",
        ),
    ]


def test_a_namespace_with_no_series_is_missing_and_so_is_its_quota(rendered):
    observed = observed_in_sync()
    del observed.phases["dept-research"]
    del observed.namespace_labels["dept-research"]
    del observed.quotas[("dept-research", "gpu")]

    findings = drift.compare(rendered, observed)["research"]

    assert findings == [
        Finding("Namespace", "", "dept-research", "", "present", "absent"),
        Finding("ResourceQuota", "dept-research", "gpu", "", "present", "absent"),
    ]
    assert drift.verdict(findings) == Verdict.MISSING


def test_a_terminating_namespace_is_drift(rendered):
    observed = observed_in_sync()
    observed.phases["dept-insync"] = {"Terminating"}

    assert drift.compare(rendered, observed)["insync"] == [
        Finding("Namespace", "", "dept-insync", "phase", "Active", "Terminating")
    ]


def test_a_cluster_queue_with_no_status_is_missing(rendered):
    observed = observed_in_sync()
    del observed.queue_statuses["insync"]

    findings = drift.compare(rendered, observed)["insync"]

    assert findings == [Finding("ClusterQueue", "", "insync", "", "present", "absent")]
    assert drift.verdict(findings) == Verdict.MISSING


def test_a_held_queue_is_in_sync_when_kueue_says_pending_and_drifted_when_active(rendered):
    (queue,) = [m for m in rendered.manifests if m.kind == "ClusterQueue" and m.name == "held"]
    assert queue.body["spec"]["stopPolicy"] == "Hold"
    assert rendered.holds["held"] == ["20 of 10 GPU-hours used this month"]
    observed = observed_in_sync()
    assert drift.compare(rendered, observed)["held"] == []

    observed.queue_statuses["held"] = {"active"}

    assert drift.compare(rendered, observed)["held"] == [
        Finding("ClusterQueue", "", "held", "status", "pending (held: stopPolicy Hold)", "active")
    ]


def test_a_queue_still_held_after_its_budget_grew_is_drifted(rendered):
    (queue,) = [m for m in rendered.manifests if m.kind == "ClusterQueue" and m.name == "lifted"]
    assert "stopPolicy" not in queue.body["spec"]
    observed = observed_in_sync()
    observed.queue_statuses["lifted"] = {"pending"}

    assert drift.compare(rendered, observed)["lifted"] == [
        Finding("ClusterQueue", "", "lifted", "status", "active", "pending")
    ]


def test_a_different_nominal_quota_or_cohort_is_drift(rendered):
    observed = observed_in_sync()
    observed.queue_limits["nominalQuota"]["marketing"][("t4", "nvidia.com/gpu")] = {Decimal(10)}
    observed.queue_cohorts["marketing"] = {"elsewhere"}

    assert drift.compare(rendered, observed)["marketing"] == [
        Finding("ClusterQueue", "", "marketing", "cohort", "gpu-fleet", "elsewhere"),
        Finding("ClusterQueue", "", "marketing", "nominalQuota t4/nvidia.com/gpu", "0", "10"),
    ]


def test_a_hand_raised_borrowing_limit_is_drift(rendered):
    """The hard quota of 8 T4s is the queue's borrowing limit: raised by hand in the
    cluster, Kueue would admit past the portal's quota."""
    observed = observed_in_sync()
    observed.queue_limits["borrowingLimit"]["marketing"][("t4", "nvidia.com/gpu")] = {Decimal(16)}

    assert drift.compare(rendered, observed)["marketing"] == [
        Finding("ClusterQueue", "", "marketing", "borrowingLimit t4/nvidia.com/gpu", "8", "16"),
    ]


def test_a_queue_whose_quotas_kueue_does_not_report_shows_them_absent(rendered):
    observed = observed_in_sync()
    del observed.queue_limits["nominalQuota"]["insync"]

    assert drift.compare(rendered, observed)["insync"] == [
        Finding("ClusterQueue", "", "insync", "nominalQuota t4/nvidia.com/gpu", "0", "absent")
    ]


def test_copies_that_disagree_are_shown_both(rendered):
    observed = observed_in_sync()
    observed.quotas[("dept-insync", "gpu")]["requests.nvidia.com/gpu"] = {Decimal(4), Decimal(6)}

    assert drift.compare(rendered, observed)["insync"] == [
        Finding(
            "ResourceQuota", "dept-insync", "gpu", "hard requests.nvidia.com/gpu", "4", "4 or 6"
        )
    ]


def test_the_realtime_lending_limit_is_compared_where_kueue_reports_it(db):
    a100 = factories.GpuClassFactory(slug="a100", gpu_product="NVIDIA-A100", capacity_gpus=8)
    agents = factories.DepartmentFactory(slug="agents", cost_centre="CC-2000")
    factories.NamespaceFactory(name="dept-agents", department=agents)
    factories.ServiceLevelFactory(department=agents, tier=Tier.REALTIME, gpu_classes=[a100])
    factories.QuotaFactory(
        department=agents, kind=QuotaKind.GPUS, limit=3, enforcement=Enforcement.HARD_QUEUE
    )
    (rendered,) = manifests.render().clusters
    observed = drift.Observed(
        phases={"dept-agents": {"Active"}},
        namespace_labels={
            "dept-agents": {
                "label_app_kubernetes_io_managed_by": {"gpu-chargeback-portal"},
                "label_gpu_chargeback_portal_department": {"agents"},
                "label_gpu_chargeback_portal_cost_centre": {"CC-2000"},
            }
        },
        quotas={("dept-agents", "gpu"): {"requests.nvidia.com/gpu": {Decimal(3)}}},
        queue_statuses={"agents": {"active"}},
        queue_limits={
            "nominalQuota": {"agents": {("a100", "nvidia.com/gpu"): {Decimal(3)}}},
            "lendingLimit": {"agents": {("a100", "nvidia.com/gpu"): {Decimal("Infinity")}}},
        },
        queue_cohorts={"agents": {"gpu-fleet"}},
    )

    assert drift.compare(rendered, observed)["agents"] == [
        Finding("ClusterQueue", "", "agents", "lendingLimit a100/nvidia.com/gpu", "0", "+Inf")
    ]
    # A Kueue without the LendingLimit gate reports none: nothing to compare, no finding.
    del observed.queue_limits["lendingLimit"]
    assert drift.compare(rendered, observed)["agents"] == []
