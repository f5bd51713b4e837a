"""What Kueue will admit with the rendered queues, read as Kueue reads them (the field docs
of ResourceQuota in apis/kueue/v1beta1/clusterqueue_types.go): a ClusterQueue's workloads
may use ``nominalQuota + borrowingLimit`` of a flavor (no borrowingLimit: all the cohort
does not use), and "the sum of the quotas for each (flavor, resource) combination defines
the maximum quantity that can be allocated by a ClusterQueue in the cohort"."""

from collections import defaultdict
from fractions import Fraction

from cluster import manifests
from departments.models import Department, GpuClass, QuotaKind
from tests import factories
from tests.cluster.conftest import AT


def _queues(fleet) -> dict[str, dict]:
    return {m.name: m.body for c in fleet.clusters for m in c.manifests if m.kind == "ClusterQueue"}


def _flavors(queue: dict) -> dict[str, dict]:
    return {
        flavor["name"]: flavor["resources"][0]
        for group in queue["spec"]["resourceGroups"]
        for flavor in group["flavors"]
    }


def _at_most(quota: dict) -> float:
    """The most of a flavor a ClusterQueue's workloads may hold at once."""
    if "borrowingLimit" not in quota:
        return float("inf")
    return quota["nominalQuota"] + quota["borrowingLimit"]


def _training_gpus(limit: int):
    factories.QuotaFactory(
        department=Department.objects.get(slug="training"), kind=QuotaKind.GPUS, limit=limit
    )


def test_a_hard_gpus_quota_on_a_class_caps_what_its_queue_admits(demo):
    """The demo: "At most 8 of the 16 T4s at once: the cluster's ResourceQuota and Kueue
    queue hold its own workloads to the same"."""
    quotas = _flavors(_queues(manifests.render(at=AT))["marketing"])
    assert _at_most(quotas["t4"]) == 8, quotas


def test_a_hard_quota_on_any_gpus_caps_each_flavor_and_the_namespace_their_sum(demo):
    """Kueue caps each flavor of a queue, never their sum: a hard 4 GPUs of any class caps
    each whole-GPU flavor at 4, and the namespaces' ResourceQuota holds the sum to 4."""
    _training_gpus(4)
    fleet = manifests.render(at=AT)
    quotas = _flavors(_queues(fleet)["training"])
    assert {f: _at_most(quotas[f]) for f in ("a100", "t4")} == {"a100": 4, "t4": 4}
    resource_quotas = [
        m.body["spec"]["hard"]
        for c in fleet.clusters
        for m in c.manifests
        if m.kind == "ResourceQuota" and m.department == "training"
    ]
    assert resource_quotas and all(
        hard == {"requests.nvidia.com/gpu": "4"} for hard in resource_quotas
    )


def test_realtime_gpus_are_kept_and_never_lent_and_the_rest_is_shared(demo):
    """Customer service's virtual agent keeps the A100s of its gpus quota (nominal quota,
    lending limit 0); every other GPU is nominal quota of the cohort's shared queue only,
    which admits nothing itself, so each department borrows the fleet's free GPUs."""
    queues = _queues(manifests.render(at=AT))
    service = _flavors(queues["customer-service"])
    assert service["a100"]["lendingLimit"] == 0
    kept = service["a100"]["nominalQuota"]
    assert kept > 0
    shared = queues["gpu-fleet-shared"]
    assert "namespaceSelector" not in shared["spec"]  # Kueue's nil selector: no namespace
    assert _flavors(shared)["a100"]["nominalQuota"] == 8 - kept
    assert _flavors(shared)["t4"]["nominalQuota"] == 16
    for name in ("marketing", "training"):
        assert all(q["nominalQuota"] == 0 for q in _flavors(queues[name]).values()), name


def test_the_cohort_is_promised_no_more_gpus_than_the_fleet_holds(demo):
    """The nominal quotas of a GPU class (and of its fractions, counted in its GPUs) across
    the cohort's queues add up to at most the class's GPUs: otherwise Kueue admits
    workloads no node can run, and a queue's nominal quota (the realtime capacity that
    lends nothing included) is not its own, since another queue holds the same GPUs as
    nominal quota and nothing is reclaimed from a queue within its nominal quota."""
    classes = {c.slug: c for c in GpuClass.objects.select_related("physical_class")}
    promised: dict[str, Fraction] = defaultdict(Fraction)
    by_queue: dict[str, list[str]] = defaultdict(list)
    for name, queue in _queues(manifests.render(at=AT)).items():
        for flavor, quota in _flavors(queue).items():
            gpu_class = classes[flavor]
            physical = gpu_class.physical_class or gpu_class
            promised[physical.slug] += quota["nominalQuota"] * gpu_class.fraction
            by_queue[physical.slug].append(f"{name} {quota['nominalQuota']} {flavor}")
    over = {
        slug: f"{float(total):g} promised of {classes[slug].capacity_gpus} ({by_queue[slug]})"
        for slug, total in sorted(promised.items())
        if total > classes[slug].capacity_gpus
    }
    assert over == {}
