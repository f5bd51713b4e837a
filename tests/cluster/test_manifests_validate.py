"""Every object the portal renders is one its API server accepts: the Kueue kinds hold to
the schema written from Kueue's API reference (tests/cluster/kueue_schema.py), the core
kinds to Kubernetes' own OpenAPI schema (kubernetes_validate, strict); ``kubectl
kustomize`` builds the written directory into exactly the rendered objects. And the
schema bites: each rule it claims fails an object that breaks it."""

import copy
from decimal import Decimal

import kubernetes_validate
import pytest
from django.core.management import call_command
from django.utils import timezone
from jsonschema import Draft202012Validator

from cluster import manifests
from departments.models import QuotaKind, Tier
from tests import factories, kubernetes_schema
from tests.cluster import kueue_schema
from tests.cluster.conftest import AT, bodies

CORE_KINDS = ("Namespace", "ResourceQuota", "LimitRange")


def validate_any(doc: dict) -> None:
    """Kueue's kinds against the schema written from its reference; the core kinds against
    Kubernetes' own (strict, the version the README names)."""
    if doc["kind"] in kueue_schema.KINDS:
        kueue_schema.validate(doc)
    elif doc["kind"] in CORE_KINDS:
        kubernetes_schema.validate(doc)
    else:
        raise AssertionError(f"{doc['kind']}: a kind these tests do not know")


def _key(doc: dict) -> tuple:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def assert_kustomize_builds_exactly(fleet: manifests.Fleet, out) -> None:
    call_command("cluster_manifests", "--out", str(out))
    for cluster in fleet.clusters:
        built = kubernetes_schema.kustomize_build(out / cluster.slug)
        rendered = [m.body for m in cluster.manifests]
        assert len(built) == len(rendered)
        assert {_key(d): d for d in built} == {_key(d): d for d in rendered}


# --- The schema itself -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", kueue_schema.KINDS)
def test_each_schema_is_a_json_schema(kind):
    Draft202012Validator.check_schema(kueue_schema.SCHEMAS[kind])


def test_kubernetes_version_has_a_strict_schema():
    assert kubernetes_schema.KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


# --- The demo fleet --------------------------------------------------------------------------


def test_every_object_of_the_demo_fleet_is_valid(demo):
    fleet = manifests.render(at=AT)
    docs = bodies(fleet)
    assert {d["kind"] for d in docs} == {
        "Namespace",
        "ResourceQuota",
        "ResourceFlavor",
        "ClusterQueue",
        "LocalQueue",
        "WorkloadPriorityClass",
    }
    for doc in docs:
        validate_any(doc)


def test_kustomize_builds_the_written_demo_directory_into_the_rendered_objects(demo, tmp_path):
    assert_kustomize_builds_exactly(manifests.render(), tmp_path)


def test_what_a_clusterqueue_refers_to_is_rendered_beside_it(demo):
    """Flavors named by a queue exist as ResourceFlavors, each LocalQueue's ClusterQueue
    exists, and each namespaced object's namespace is a rendered Namespace."""
    for cluster in manifests.render(at=AT).clusters:
        docs = [m.body for m in cluster.manifests]
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for doc in docs:
            if doc["kind"] == "ClusterQueue":
                for group in doc["spec"]["resourceGroups"]:
                    for flavor in group["flavors"]:
                        assert ("ResourceFlavor", flavor["name"]) in names
            if doc["kind"] == "LocalQueue":
                assert ("ClusterQueue", doc["spec"]["clusterQueue"]) in names
            if "namespace" in doc["metadata"]:
                assert ("Namespace", doc["metadata"]["namespace"]) in names


# --- The schema bites ------------------------------------------------------------------------


def _queue(docs, name="marketing") -> dict:
    return copy.deepcopy(
        next(d for d in docs if d["kind"] == "ClusterQueue" and d["metadata"]["name"] == name)
    )


def _first_quota(queue: dict) -> dict:
    return queue["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0]


def _misspell_nominal_quota(q):
    quota = _first_quota(q)
    quota["nominalQuotas"] = quota.pop("nominalQuota")


def _no_nominal_quota(q):
    del _first_quota(q)["nominalQuota"]


def _lending_without_cohort(q):
    del q["spec"]["cohort"]
    _first_quota(q)["lendingLimit"] = 0


def _borrowing_without_cohort(q):
    del q["spec"]["cohort"]
    _first_quota(q)["borrowingLimit"] = 0


def _fewer_resources_than_covered(q):
    q["spec"]["resourceGroups"][0]["coveredResources"].append("cpu")


def _resources_out_of_order(q):
    group = q["spec"]["resourceGroups"][0]
    group["coveredResources"] = ["cpu", "nvidia.com/gpu"]
    group["flavors"][0]["resources"].insert(1, {"name": "cpu", "nominalQuota": "10"})


def _flavor_in_two_groups(q):
    group = q["spec"]["resourceGroups"][0]
    q["spec"]["resourceGroups"].append(
        {"coveredResources": ["cpu"], "flavors": [{**group["flavors"][0], "resources": []}]}
    )
    q["spec"]["resourceGroups"][1]["flavors"][0]["resources"] = [{"name": "cpu", "nominalQuota": 1}]


def _lending_more_than_nominal(q):
    quota = _first_quota(q)
    quota["lendingLimit"] = f"{quota['nominalQuota'] + 1}"


def _borrow_within_cohort_without_reclaim(q):
    q["spec"]["preemption"] = {"borrowWithinCohort": {"policy": "LowerPriority"}}


def _groups(n: int) -> list[dict]:
    """``n`` resource groups, each of one resource and one flavor of its own."""
    return [
        {
            "coveredResources": [f"example.com/r{i}"],
            "flavors": [
                {"name": f"f{i}", "resources": [{"name": f"example.com/r{i}", "nominalQuota": 1}]}
            ],
        }
        for i in range(n)
    ]


def _seventeen_resource_groups(q):
    q["spec"]["resourceGroups"] = _groups(17)


def _sixty_five_flavors(q):
    group = q["spec"]["resourceGroups"][0]
    group["flavors"] = [
        {"name": f"f{i}", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 1}]}
        for i in range(65)
    ]


def _sixty_five_covered_resources(q):
    names = [f"example.com/r{i}" for i in range(65)]
    group = q["spec"]["resourceGroups"][0]
    group["coveredResources"] = names
    group["flavors"][0]["resources"] = [{"name": n, "nominalQuota": 1} for n in names]


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        node = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


CLUSTER_QUEUE_BREAKS = {
    "misspelled nominalQuotas": (_misspell_nominal_quota, "nominalQuotas: unknown field"),
    "nominalQuota missing": (_no_nominal_quota, "'nominalQuota' is a required property"),
    "stopPolicy Pause": (_set(["spec", "stopPolicy"], "Pause"), "spec.stopPolicy: 'Pause'"),
    "lendingLimit without a cohort": (
        _lending_without_cohort,
        "resources[0].lendingLimit: lendingLimit must be nil when cohort is empty",
    ),
    "borrowingLimit without a cohort": (
        _borrowing_without_cohort,
        "resources[0].borrowingLimit: borrowingLimit must be nil when cohort is empty",
    ),
    "a flavor with fewer resources than coveredResources": (
        _fewer_resources_than_covered,
        "flavors[0].resources: flavors must have the same number of resources as the "
        "coveredResources",
    ),
    "resources not in coveredResources' order": (
        _resources_out_of_order,
        "must match the name in coveredResources",
    ),
    "a flavor in two resource groups": (_flavor_in_two_groups, "duplicate flavor 't4'"),
    "lendingLimit above nominalQuota": (
        _lending_more_than_nominal,
        "lendingLimit: must be less than or equal to the nominalQuota",
    ),
    "a negative nominalQuota": (
        _set(["spec", "resourceGroups", 0, "flavors", 0, "resources", 0, "nominalQuota"], -1),
        "nominalQuota: -1 must be a non-negative Kubernetes quantity",
    ),
    "a quantity with words": (
        _set(["spec", "resourceGroups", 0, "flavors", 0, "resources", 0, "nominalQuota"], "8 GPUs"),
        "nominalQuota: '8 GPUs' must be a non-negative",
    ),
    "a fractional number for a quantity": (
        _set(["spec", "resourceGroups", 0, "flavors", 0, "resources", 0, "nominalQuota"], 1.5),
        "nominalQuota: 1.5 must be a non-negative",
    ),
    "queueingStrategy FIFO": (
        _set(["spec", "queueingStrategy"], "FIFO"),
        "spec.queueingStrategy: 'FIFO'",
    ),
    "withinClusterQueue Always": (
        _set(["spec", "preemption", "withinClusterQueue"], "Always"),
        "spec.preemption.withinClusterQueue",
    ),
    "reclaimWithinCohort Never with borrowWithinCohort": (
        _borrow_within_cohort_without_reclaim,
        "reclaimWithinCohort=Never and borrowWithinCohort.Policy!=Never",
    ),
    "17 resource groups": (_seventeen_resource_groups, "spec.resourceGroups: 17 items, at most 16"),
    "65 flavors in a group": (
        _sixty_five_flavors,
        "spec.resourceGroups[0].flavors: 65 items, at most 64",
    ),
    "65 covered resources": (
        _sixty_five_covered_resources,
        "coveredResources: 65 items, at most 64",
    ),
    "a cohort with capitals": (_set(["spec", "cohort"], "GPU-Fleet"), "spec.cohort: "),
    "a flavor name with an underscore": (
        _set(["spec", "resourceGroups", 0, "flavors", 0, "name"], "t4_shared"),
        "flavors[0].name",
    ),
    "a misspelled spec field": (_set(["spec", "stopPolicies"], "Hold"), "spec.stopPolicies"),
    "a status": (_set(["status"], {"pendingWorkloads": 0}), "status: unknown field"),
    "a misspelled metadata field": (_set(["metadata", "lables"], {}), "metadata.lables"),
    "a label value with a space": (
        _set(["metadata", "labels", "gpu-chargeback-portal/cost-centre"], "CC 4100"),
        "metadata.labels.gpu-chargeback-portal/cost-centre",
    ),
    "In with no values": (
        _set(["spec", "namespaceSelector", "matchExpressions"], [{"key": "a", "operator": "In"}]),
        "In and NotIn need values",
    ),
    "another apiVersion": (_set(["apiVersion"], "kueue.x-k8s.io/v1beta2"), "apiVersion/kind"),
}


@pytest.mark.parametrize("case", CLUSTER_QUEUE_BREAKS, ids=list(CLUSTER_QUEUE_BREAKS))
def test_a_broken_clusterqueue_fails_naming_it_and_the_path(demo, case):
    mutate, expected = CLUSTER_QUEUE_BREAKS[case]
    queue = _queue(bodies(manifests.render(at=AT)))
    kueue_schema.validate(queue)  # valid before
    mutate(queue)
    with pytest.raises(AssertionError) as refused:
        kueue_schema.validate(queue)
    assert str(refused.value).startswith("ClusterQueue marketing: ")
    assert expected in str(refused.value)


def test_the_limits_themselves_pass(demo):
    """16 groups, 64 flavors and 64 covered resources are allowed: the limits bite above,
    not at, the numbers Kueue gives; so do other quantities' forms and stop policies."""
    rendered = _queue(bodies(manifests.render(at=AT)))

    def fresh():
        return copy.deepcopy(rendered)

    queue = fresh()
    queue["spec"]["resourceGroups"] = _groups(16)
    kueue_schema.validate(queue)

    queue = fresh()
    _sixty_five_flavors(queue)
    queue["spec"]["resourceGroups"][0]["flavors"].pop()
    kueue_schema.validate(queue)

    queue = fresh()
    _sixty_five_covered_resources(queue)
    group = queue["spec"]["resourceGroups"][0]
    group["coveredResources"].pop()
    group["flavors"][0]["resources"].pop()
    kueue_schema.validate(queue)

    queue = fresh()
    queue["spec"]["stopPolicy"] = "HoldAndDrain"
    _first_quota(queue).update(nominalQuota="1500m", lendingLimit="1", borrowingLimit="2k")
    kueue_schema.validate(queue)


def _other_kind(docs, kind) -> dict:
    return copy.deepcopy(next(d for d in docs if d["kind"] == kind))


OTHER_BREAKS = {
    "LocalQueue without a namespace": ("LocalQueue", ["metadata", "namespace"], None),
    "LocalQueue with a ClusterQueue in capitals": (
        "LocalQueue",
        ["spec", "clusterQueue"],
        "Marketing",
    ),
    "LocalQueue stopPolicy Pause": ("LocalQueue", ["spec", "stopPolicy"], "Pause"),
    "LocalQueue with a misspelled field": ("LocalQueue", ["spec", "clusterqueue"], "x"),
    "WorkloadPriorityClass value as text": ("WorkloadPriorityClass", ["value"], "5"),
    "WorkloadPriorityClass value beyond int32": ("WorkloadPriorityClass", ["value"], 2**31),
    "WorkloadPriorityClass without a value": ("WorkloadPriorityClass", ["value"], None),
    "WorkloadPriorityClass with a spec": ("WorkloadPriorityClass", ["spec"], {"value": 5}),
    "ResourceFlavor with nine node labels": (
        "ResourceFlavor",
        ["spec", "nodeLabels"],
        {f"example.com/l{i}": "x" for i in range(9)},
    ),
    "ResourceFlavor node label value with a space": (
        "ResourceFlavor",
        ["spec", "nodeLabels", "nvidia.com/gpu.product"],
        "Tesla T4",
    ),
    "ResourceFlavor taint with an unknown effect": (
        "ResourceFlavor",
        ["spec", "nodeTaints"],
        [{"key": "gpu", "effect": "NoWay"}],
    ),
    "ResourceFlavor toleration with a value and Exists": (
        "ResourceFlavor",
        ["spec", "tolerations"],
        [{"key": "gpu", "operator": "Exists", "value": "x"}],
    ),
    "ResourceFlavor topologyName without node labels": (
        "ResourceFlavor",
        ["spec"],
        {"topologyName": "default"},
    ),
}


@pytest.mark.parametrize("case", OTHER_BREAKS, ids=list(OTHER_BREAKS))
def test_a_broken_flavor_local_queue_or_priority_class_fails(demo, case):
    kind, path, value = OTHER_BREAKS[case]
    doc = _other_kind(bodies(manifests.render(at=AT)), kind)
    kueue_schema.validate(doc)
    *parents, last = path
    node = doc
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    with pytest.raises(AssertionError, match=rf"^{kind} "):
        kueue_schema.validate(doc)


def test_the_core_check_bites(demo):
    docs = bodies(manifests.render(at=AT))
    quota = _other_kind(docs, "ResourceQuota")
    kubernetes_schema.validate(quota)
    quota["spec"]["hardd"] = quota["spec"].pop("hard")
    with pytest.raises(AssertionError, match=r"^ResourceQuota dept-marketing/gpu: "):
        kubernetes_schema.validate(quota)
    namespace = _other_kind(docs, "Namespace")
    namespace["metadata"]["lables"] = namespace["metadata"].pop("labels")
    with pytest.raises(AssertionError, match=r"^Namespace dept-"):
        kubernetes_schema.validate(namespace)


# --- A fleet with fractions of GPUs, default GPUs and held queues ----------------------------


@pytest.fixture
def fractional_fleet(postgres):
    """Whole A100s and their 1g.10gb MIG instances, T4s and their time-sliced quarters; a
    department (research) on all of them with a LimitRange, and one (studio) whose hard
    monthly budget a running job's reservation has spent, and another (lab) whose T4 budget
    is spent."""
    a100 = factories.GpuClassFactory(
        slug="a100", name="A100", capacity_gpus=8, gpu_product="NVIDIA-A100-SXM4-80GB"
    )
    mig = factories.GpuClassFactory(
        slug="a100-1g-10gb",
        name="A100 1g.10gb",
        capacity_gpus=0,
        physical_class=a100,
        fraction_numerator=1,
        fraction_denominator=7,
        mig_profile="1g.10gb",
        gpu_product="NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
    )
    t4 = factories.GpuClassFactory(slug="t4", name="T4", capacity_gpus=16, gpu_product="Tesla-T4")
    shared = factories.GpuClassFactory(
        slug="t4-shared",
        name="T4 shared",
        capacity_gpus=0,
        physical_class=t4,
        fraction_numerator=1,
        fraction_denominator=4,
        gpu_product="Tesla-T4-SHARED",
    )
    research = factories.DepartmentFactory(slug="research", name="Research")
    factories.NamespaceFactory(name="research", department=research, default_gpus=1)
    factories.ServiceLevelFactory(
        department=research, tier=Tier.REALTIME, priority=9, gpu_classes=[mig, a100]
    )
    factories.ServiceLevelFactory(department=research, tier=Tier.BATCH, gpu_classes=[shared])
    for limit, gpu_class in ((14, mig), (8, shared), (4, None)):
        factories.QuotaFactory(
            department=research, kind=QuotaKind.GPUS, limit=limit, gpu_class=gpu_class
        )

    studio = factories.DepartmentFactory(slug="studio", name="Studio")
    factories.NamespaceFactory(name="studio", department=studio)
    factories.ServiceLevelFactory(department=studio, gpu_classes=[t4])
    factories.QuotaFactory(department=studio, kind=QuotaKind.GPU_HOURS_MONTH, limit=10)
    factories.GenerationJobFactory(
        department=studio,
        gpu_class=t4,
        state="running",
        gpus=2,
        max_runtime_s=36000,
        gpu_hours_reserved=Decimal("20"),
        started_at=timezone.now(),
    )

    lab = factories.DepartmentFactory(slug="lab", name="Lab")
    factories.NamespaceFactory(name="lab", department=lab)
    factories.ServiceLevelFactory(
        department=lab, tier=Tier.REALTIME, priority=8, gpu_classes=[t4, a100]
    )
    factories.QuotaFactory(department=lab, kind=QuotaKind.GPU_HOURS_MONTH, limit=1, gpu_class=t4)
    # The GPUs its realtime work keeps (soft: it alerts beyond, the cluster lets it borrow).
    factories.QuotaFactory(department=lab, kind=QuotaKind.GPUS, limit=2, enforcement="soft")
    factories.GenerationJobFactory(
        department=lab,
        gpu_class=t4,
        state="queued",
        gpus=1,
        max_runtime_s=7200,
        gpu_hours_reserved=Decimal("2"),
    )


def _flavors(queue: dict) -> dict[str, dict]:
    return {
        flavor["name"]: flavor["resources"][0]
        for group in queue["spec"]["resourceGroups"]
        for flavor in group["flavors"]
    }


def test_a_fleet_of_fractions_and_held_queues_renders_valid_objects(fractional_fleet, tmp_path):
    fleet = manifests.render()
    docs = bodies(fleet)
    for doc in docs:
        validate_any(doc)
    assert "LimitRange" in {d["kind"] for d in docs}

    research = _flavors(_queue(docs, "research"))
    # Realtime work keeps its hard quota's GPUs and lends none; batch work keeps none and
    # borrows up to its quota from the cohort's shared queue.
    assert research == {
        "a100": {
            "name": "nvidia.com/gpu",
            "nominalQuota": 4,
            "borrowingLimit": 0,
            "lendingLimit": 0,
        },
        "a100-1g-10gb": {
            "name": "nvidia.com/mig-1g.10gb",
            "nominalQuota": 14,
            "borrowingLimit": 0,
            "lendingLimit": 0,
        },
        "t4-shared": {"name": "nvidia.com/gpu.shared", "nominalQuota": 0, "borrowingLimit": 8},
    }
    studio = _queue(docs, "studio")
    assert studio["spec"]["stopPolicy"] == "Hold"
    lab = _queue(docs, "lab")
    assert "stopPolicy" not in lab["spec"]
    assert _flavors(lab)["t4"] == {"name": "nvidia.com/gpu", "nominalQuota": 0, "borrowingLimit": 0}
    assert _flavors(lab)["a100"] == {"name": "nvidia.com/gpu", "nominalQuota": 2, "lendingLimit": 0}
    # The cohort's shared queue holds what realtime work does not keep: of 8 A100s, research
    # keeps 4 and 14/7 in MIG instances, lab 2, so none is left; T4s: 16, 64 shared replicas.
    assert _flavors(_queue(docs, "gpu-fleet-shared")) == {
        "a100": {"name": "nvidia.com/gpu", "nominalQuota": 0},
        "a100-1g-10gb": {"name": "nvidia.com/mig-1g.10gb", "nominalQuota": 0},
        "t4": {"name": "nvidia.com/gpu", "nominalQuota": 16},
        "t4-shared": {"name": "nvidia.com/gpu.shared", "nominalQuota": 64},
    }
    assert set(fleet.clusters[0].holds) == {"studio", "lab"}

    assert_kustomize_builds_exactly(fleet, tmp_path)
