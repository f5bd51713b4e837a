"""What each cluster should hold, rendered from the portal's departments, quotas and
service levels: the one source of truth that GitOps applies.

Per cluster (a ``Cluster`` row; with none, the one cluster of the fleet, ``default``):

- per active department with namespaces there: each ``Namespace`` (labelled with the
  department and its cost centre), a ``ResourceQuota`` ``gpu`` in each from the department's
  hard ``gpus`` quotas, a ``LimitRange`` ``gpu-defaults`` where IT set default GPUs;
- Kueue (``kueue.x-k8s.io/v1beta1``): a ``ClusterQueue`` per department in one cohort, and
  the cohort's shared queue. Kueue counts the nominal quotas of a cohort as its capacity,
  so the fleet's GPUs are each nominal quota once: realtime work keeps the GPUs its gpus
  quota names (its nominal quota, ``lendingLimit: 0``: never lent), every other GPU is the
  shared queue's (which admits nothing itself), and every department borrows from there up
  to its hard gpus quota (``borrowingLimit``; none: as much as is free). A department's
  queue is held (``stopPolicy: Hold``) once a hard monthly GPU-hour budget is spent, or
  just the class's flavor (nothing kept, nothing borrowed) for a budget on one class. A
  ``LocalQueue`` in each of its namespaces; a ``WorkloadPriorityClass`` per service level;
  a ``ResourceFlavor`` per GPU class its queues use, selecting nodes by the class's
  ``nvidia.com/gpu.product`` label.

What Kueue cannot say is left to the namespace's ``ResourceQuota``: a hard quota on GPUs of
any class caps each whole-GPU flavor, and the sum over flavors is held by
``requests.nvidia.com/gpu``. A class's capacity is the fleet's (``GpuClass.capacity_gpus``):
with several clusters each cluster's shared queue offers it whole; and how an A100 is cut
into MIG instances is the nodes' business, so a MIG flavor is offered every instance its
physical class could be cut into.

Why ``v1beta1``: every Kueue release since 0.3 serves it (0.15 added ``v1beta2`` and still
serves ``v1beta1``, converting), so one rendering applies to the Kueue a company runs today;
moving to ``v1beta2`` renames ``spec.cohort`` to ``spec.cohortName`` and nothing else here.

Rendering is all or nothing: every problem in the fleet is collected and raised together
(:class:`RenderError`), and nothing is returned or written for a fleet with one.
"""

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import yaml
from django.conf import settings
from django.db.models import Prefetch, Q
from django.utils import timezone

from departments.models import (
    LABEL_VALUE_RE,
    NAMESPACE_NAME_RE,
    RESERVED_NAMESPACE_PREFIX,
    RESERVED_NAMESPACES,
    Cluster,
    Department,
    Enforcement,
    GpuClass,
    Namespace,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from jobs import selectors as job_selectors

KUEUE_API = "kueue.x-k8s.io/v1beta1"
MANAGED_BY = "gpu-chargeback-portal"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
WHOLE_GPU = "nvidia.com/gpu"
# The GPU operator's time-slicing with renameByDefault advertises shared replicas so.
SHARED_GPU = "nvidia.com/gpu.shared"
QUOTA_NAME = "gpu"
LIMIT_RANGE_NAME = "gpu-defaults"
HARD = (Enforcement.HARD_QUEUE, Enforcement.HARD_REJECT)
# The order objects are listed in (kustomization.yaml, multi-document YAML): what others
# refer to first.
KIND_ORDER = (
    "Namespace",
    "ResourceFlavor",
    "WorkloadPriorityClass",
    "ClusterQueue",
    "ResourceQuota",
    "LimitRange",
    "LocalQueue",
)
DNS_LABEL = re.compile(NAMESPACE_NAME_RE)
LABEL_VALUE = re.compile(LABEL_VALUE_RE)
HEADER = "# Rendered by the GPU chargeback portal; edit the portal, not this file.\n"


class RenderError(Exception):
    """The fleet cannot be rendered; ``errors`` says every reason, each naming what to fix."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object of one cluster; ``department`` is the slug of the department
    it is for, ``None`` for what departments share (a ResourceFlavor)."""

    department: str | None
    body: dict

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.body["metadata"].get("namespace", "")

    @property
    def filename(self) -> str:
        # "_" is in no Kubernetes name, so the parts never run into each other.
        parts = [self.kind.lower(), self.namespace, self.name]
        return "_".join(p for p in parts if p) + ".yaml"

    def sort_key(self) -> tuple:
        return (KIND_ORDER.index(self.kind), self.namespace, self.name)

    def yaml(self) -> str:
        return yaml.safe_dump(self.body, sort_keys=False, default_flow_style=False)


@dataclass
class ClusterManifests:
    slug: str
    name: str
    manifests: list[Manifest] = field(default_factory=list)
    # Departments whose queue is held, and the GPU classes held by a class budget, with why.
    holds: dict[str, list[str]] = field(default_factory=dict)

    def kustomization(self) -> str:
        body = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [m.filename for m in self.manifests],
        }
        return HEADER + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)

    def files(self) -> dict[str, str]:
        """Every file of the cluster's kustomize directory, by name."""
        files = {m.filename: HEADER + m.yaml() for m in self.manifests}
        files["kustomization.yaml"] = self.kustomization()
        return files


@dataclass
class Fleet:
    clusters: list[ClusterManifests]

    def select(self, *, cluster: str | None = None, department: str | None = None) -> "Fleet":
        """The clusters (one, or all) with only the objects of ``department`` and the flavors
        its queues use."""
        clusters = [c for c in self.clusters if cluster is None or c.slug == cluster]
        if department is None:
            return Fleet(clusters)
        picked = []
        for c in clusters:
            own = [m for m in c.manifests if m.department == department]
            flavors = {
                flavor["name"]
                for m in own
                if m.kind == "ClusterQueue"
                for group in m.body["spec"]["resourceGroups"]
                for flavor in group["flavors"]
            }
            shared = [m for m in c.manifests if m.kind == "ResourceFlavor" and m.name in flavors]
            picked.append(
                ClusterManifests(
                    c.slug,
                    c.name,
                    sorted(own + shared, key=Manifest.sort_key),
                    {k: v for k, v in c.holds.items() if k == department},
                )
            )
        return Fleet(picked)

    def documents(self) -> str:
        """Every object as one multi-document YAML stream, each preceded by a comment that
        names its cluster."""
        parts = []
        for c in self.clusters:
            for m in c.manifests:
                parts.append(f"---\n# cluster: {c.slug}\n{m.yaml()}")
        return "".join(parts)

    def etag(self) -> str:
        return hashlib.sha256(self.documents().encode()).hexdigest()[:32]


def _labels(department: Department) -> dict[str, str]:
    prefix = settings.CLUSTER_LABEL_PREFIX
    labels = {MANAGED_BY_LABEL: MANAGED_BY, f"{prefix}/department": department.slug}
    if department.cost_centre:
        labels[f"{prefix}/cost-centre"] = department.cost_centre
    return labels


def _meta(name: str, labels: dict, namespace: str | None = None) -> dict:
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict(labels)
    return meta


def gpu_resource(gpu_class: GpuClass) -> str:
    """The extended resource a pod asks for to get one instance of ``gpu_class``."""
    if gpu_class.mig_profile:
        return f"nvidia.com/mig-{gpu_class.mig_profile}"
    if gpu_class.physical_class_id is not None:
        return SHARED_GPU
    return WHOLE_GPU


def instances(gpu_class: GpuClass, classes: dict[int, GpuClass]) -> int:
    """How many instances of ``gpu_class`` the fleet holds: its GPUs, or the instances of
    its fraction its physical class's GPUs are cut into."""
    if gpu_class.physical_class_id is None:
        return gpu_class.capacity_gpus
    physical = classes[gpu_class.physical_class_id]
    return int(physical.capacity_gpus / Fraction(gpu_class.fraction))


def _quantity(value: Decimal | int) -> str:
    return f"{Decimal(value).normalize():f}"


@dataclass
class _Department:
    department: Department
    namespaces: list[Namespace]
    levels: list[ServiceLevel]
    quotas: list[Quota]
    uses: dict[int, Decimal]


def _departments(at: dt.datetime) -> list[_Department]:
    departments = (
        Department.objects.filter(active=True)
        .order_by("slug")
        .prefetch_related(
            Prefetch("namespaces", Namespace.objects.select_related("cluster").order_by("name")),
            Prefetch(
                "service_levels",
                ServiceLevel.objects.prefetch_related("gpu_classes").order_by("tier"),
            ),
            Prefetch(
                "quotas",
                Quota.objects.filter(job_kind="")
                .filter(Q(kind=QuotaKind.GPUS) | Q(kind=QuotaKind.GPU_HOURS_MONTH))
                .select_related("gpu_class"),
            ),
        )
    )
    result = []
    for department in departments:
        quotas = list(department.quotas.all())
        budgets = [
            q for q in quotas if q.kind == QuotaKind.GPU_HOURS_MONTH and q.enforcement in HARD
        ]
        uses = job_selectors.quota_uses(budgets, at=at) if budgets else {}
        result.append(
            _Department(
                department,
                list(department.namespaces.all()),
                list(department.service_levels.all()),
                quotas,
                uses,
            )
        )
    return result


def _check_names(entries: list[_Department], classes: dict[int, GpuClass]) -> list[str]:
    errors = []
    for entry in entries:
        dept = entry.department
        if not DNS_LABEL.match(dept.slug) or len(dept.slug) > 63:
            errors.append(
                f"Department {dept.name}: its slug “{dept.slug}” names its Kueue queues and must "
                "be a Kubernetes name (lower-case letters, digits and hyphens)."
            )
        if dept.cost_centre and not LABEL_VALUE.match(dept.cost_centre):
            errors.append(
                f"Department {dept.name}: its cost centre “{dept.cost_centre}” is not a "
                "Kubernetes label value (up to 63 letters, digits, '-', '_' and '.', starting "
                "and ending with a letter or digit)."
            )
        for namespace in entry.namespaces:
            name = namespace.name
            if not DNS_LABEL.match(name) or len(name) > 63:
                errors.append(
                    f"Department {dept.name}: namespace “{name}” is not a name Kubernetes "
                    "accepts (an RFC 1123 label: up to 63 lower-case letters, digits and "
                    "hyphens)."
                )
            elif name in RESERVED_NAMESPACES or name.startswith(RESERVED_NAMESPACE_PREFIX):
                errors.append(
                    f"Department {dept.name}: namespace “{name}” is one Kubernetes keeps for "
                    "itself (default, kube-*); the portal will not render or prune it."
                )
    return errors


def _flavor(gpu_class: GpuClass) -> Manifest:
    return Manifest(
        None,
        {
            "apiVersion": KUEUE_API,
            "kind": "ResourceFlavor",
            "metadata": _meta(gpu_class.slug, {MANAGED_BY_LABEL: MANAGED_BY}),
            "spec": {"nodeLabels": {GPU_PRODUCT_LABEL: gpu_class.gpu_product}},
        },
    )


def _queue_classes(entry: _Department, classes: dict[int, GpuClass]) -> list[GpuClass]:
    ids = {c.pk for level in entry.levels for c in level.gpu_classes.all()}
    return sorted((classes[i] for i in ids), key=lambda c: c.slug)


def _department_manifests(
    entry: _Department,
    namespaces: list[Namespace],
    classes: dict[int, GpuClass],
    errors: list[str],
) -> tuple[list[Manifest], set[int], list[str]]:
    """The department's objects in one cluster, the GPU classes its queue uses, and the
    holds on it (why)."""
    dept = entry.department
    slug, labels = dept.slug, _labels(dept)
    hard_gpus = [q for q in entry.quotas if q.kind == QuotaKind.GPUS and q.enforcement in HARD]
    department_wide = next((q for q in hard_gpus if q.gpu_class_id is None), None)
    by_class = {q.gpu_class_id: q for q in hard_gpus if q.gpu_class_id is not None}
    queue_classes = _queue_classes(entry, classes)
    queue_ids = {c.pk for c in queue_classes}

    for quota in by_class.values():
        gpu_class = classes[quota.gpu_class_id]
        if gpu_class.pk not in queue_ids:
            errors.append(
                f"Department {dept.name}: its quota of {quota.limit_text} on {gpu_class} has no "
                f"flavor to hold it: none of its service levels may use {gpu_class}."
            )
        elif quota.limit > instances(gpu_class, classes):
            errors.append(
                f"Department {dept.name}: its quota of {quota.limit_text} on {gpu_class} is more "
                f"than the fleet's {instances(gpu_class, classes)} {gpu_resource(gpu_class)}; no "
                "flavor can hold it."
            )
    if department_wide is not None and queue_classes:
        whole = sum(instances(c, classes) for c in queue_classes if gpu_resource(c) == WHOLE_GPU)
        if department_wide.limit > whole:
            errors.append(
                f"Department {dept.name}: its quota of {department_wide.limit_text} is more than "
                f"the {whole} whole GPUs of the classes its service levels may use; no flavor "
                "can hold it."
            )
    for gpu_class in queue_classes:
        if not DNS_LABEL.match(gpu_class.slug):
            errors.append(
                f"GPU class {gpu_class.name}: its slug “{gpu_class.slug}” names its Kueue "
                "ResourceFlavor and must be a Kubernetes name (lower-case letters, digits and "
                "hyphens)."
            )
        if not gpu_class.gpu_product:
            errors.append(
                f"GPU class {gpu_class.name}: set its GPU product (the nvidia.com/gpu.product "
                f"node label) so that Kueue's flavor for it can select its nodes; "
                f"{dept.name}'s service levels use it."
            )

    # Hard monthly budgets spent: the whole queue held, or the class's flavor emptied.
    holds, held_classes, hold = [], set(), False
    for quota in entry.quotas:
        if quota.kind != QuotaKind.GPU_HOURS_MONTH or quota.enforcement not in HARD:
            continue
        used = entry.uses.get(quota.pk, Decimal(0))
        if used < quota.limit:
            continue
        scope = f" on {quota.gpu_class}" if quota.gpu_class_id else ""
        holds.append(f"{_quantity(used)} of {quota.limit_text}{scope} used this month")
        if quota.gpu_class_id is None:
            hold = True
        else:
            held_classes.add(quota.gpu_class_id)

    manifests = []
    resources: dict[str, Decimal] = {}
    if department_wide is not None:
        resources[WHOLE_GPU] = department_wide.limit
    for quota in by_class.values():
        resource = gpu_resource(classes[quota.gpu_class_id])
        if resource == WHOLE_GPU and department_wide is not None:
            continue
        resources[resource] = resources.get(resource, Decimal(0)) + quota.limit
    for namespace in namespaces:
        manifests.append(
            Manifest(
                slug,
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": _meta(namespace.name, labels),
                },
            )
        )
        if resources:
            manifests.append(
                Manifest(
                    slug,
                    {
                        "apiVersion": "v1",
                        "kind": "ResourceQuota",
                        "metadata": _meta(QUOTA_NAME, labels, namespace.name),
                        "spec": {
                            "hard": {
                                f"requests.{r}": _quantity(v) for r, v in sorted(resources.items())
                            }
                        },
                    },
                )
            )
        if namespace.default_gpus:
            n = str(namespace.default_gpus)
            manifests.append(
                Manifest(
                    slug,
                    {
                        "apiVersion": "v1",
                        "kind": "LimitRange",
                        "metadata": _meta(LIMIT_RANGE_NAME, labels, namespace.name),
                        "spec": {
                            "limits": [
                                {
                                    "type": "Container",
                                    "default": {WHOLE_GPU: n},
                                    "defaultRequest": {WHOLE_GPU: n},
                                }
                            ]
                        },
                    },
                )
            )
    if not queue_classes:
        return manifests, set(), holds

    realtime = {
        c.pk
        for level in entry.levels
        if level.tier == Tier.REALTIME
        for c in level.gpu_classes.all()
    }
    # Any gpus quota, soft ones too: for realtime work it is the GPUs to keep for it.
    all_gpus = [q for q in entry.quotas if q.kind == QuotaKind.GPUS]
    any_by_class = {q.gpu_class_id: q for q in all_gpus if q.gpu_class_id is not None}
    any_wide = next((q for q in all_gpus if q.gpu_class_id is None), None)
    groups: dict[str, list[dict]] = {}
    reserved: dict[int, int] = {}
    for gpu_class in queue_classes:
        resource, capacity = gpu_resource(gpu_class), instances(gpu_class, classes)
        # The most its workloads may hold at once: its hard quota on the class, else its
        # hard quota on any GPUs (all its whole-GPU flavors together are held to that by the
        # namespaces' ResourceQuota: Kueue caps each flavor, never their sum).
        if gpu_class.pk in by_class:
            most = int(by_class[gpu_class.pk].limit)
        elif department_wide is not None and resource == WHOLE_GPU:
            most = min(int(department_wide.limit), capacity)
        else:
            most = None
        # Its own GPUs (nominal quota): only realtime work keeps GPUs for itself, as many
        # as its gpus quota on the class says, and lends none of them; every other GPU is
        # the fleet's, in the cohort's shared queue, and borrowed from there.
        nominal = 0
        if gpu_class.pk in realtime:
            keep = any_by_class.get(gpu_class.pk) or (any_wide if resource == WHOLE_GPU else None)
            if keep is None:
                errors.append(
                    f"Department {dept.name}: its realtime work may run on {gpu_class} but "
                    f"no gpus quota says how many of them to keep for it; add one on "
                    f"{gpu_class} (soft is enough)."
                )
            else:
                nominal = min(int(keep.limit), capacity)
        if gpu_class.pk in held_classes:
            nominal, most = 0, 0
        reserved[gpu_class.pk] = nominal
        quota = {"name": resource, "nominalQuota": nominal}
        if most is not None:
            quota["borrowingLimit"] = max(most - nominal, 0)
        if gpu_class.pk in realtime and nominal:
            # Realtime capacity is never lent: the virtual agent must find its GPUs free.
            quota["lendingLimit"] = 0
        groups.setdefault(resource, []).append({"name": gpu_class.slug, "resources": [quota]})
    spec = {
        "cohort": settings.CLUSTER_COHORT,
        "namespaceSelector": {"matchLabels": {f"{settings.CLUSTER_LABEL_PREFIX}/department": slug}},
        "queueingStrategy": "BestEffortFIFO",
        "preemption": {
            "reclaimWithinCohort": "Any",
            "withinClusterQueue": "LowerPriority",
        },
        "resourceGroups": [
            {"coveredResources": [resource], "flavors": flavors}
            for resource, flavors in sorted(groups.items())
        ],
    }
    if hold:
        spec["stopPolicy"] = "Hold"
    manifests.append(
        Manifest(
            slug,
            {
                "apiVersion": KUEUE_API,
                "kind": "ClusterQueue",
                "metadata": _meta(slug, labels),
                "spec": spec,
            },
        )
    )
    for namespace in namespaces:
        manifests.append(
            Manifest(
                slug,
                {
                    "apiVersion": KUEUE_API,
                    "kind": "LocalQueue",
                    "metadata": _meta(slug, labels, namespace.name),
                    "spec": {"clusterQueue": slug},
                },
            )
        )
    for level in entry.levels:
        manifests.append(
            Manifest(
                slug,
                {
                    "apiVersion": KUEUE_API,
                    "kind": "WorkloadPriorityClass",
                    "metadata": _meta(f"{slug}-{level.tier}", labels),
                    "value": level.priority,
                    "description": f"{dept.name}, {level.get_tier_display()} work "
                    f"(service level priority {level.priority}).",
                },
            )
        )
    return manifests, reserved, holds


def _shared_queue(reserved: dict[int, int], classes: dict[int, GpuClass], errors, cluster):
    """The cohort's shared queue: every GPU of the fleet that no realtime work keeps, for
    the departments' queues to borrow. It admits nothing itself (no namespace selector:
    Kueue's "nothing" selector)."""
    groups: dict[str, list[dict]] = {}
    kept: dict[int, Fraction] = {}
    for pk, nominal in reserved.items():
        gpu_class = classes[pk]
        physical = gpu_class.physical_class_id or pk
        kept[physical] = kept.get(physical, Fraction(0)) + nominal * gpu_class.fraction
    for physical, gpus in sorted(kept.items()):
        if gpus > classes[physical].capacity_gpus:
            errors.append(
                f"Realtime work keeps {float(gpus):g} GPUs of {classes[physical]} in cluster "
                f"{cluster} (the gpus quotas of the departments' realtime service levels), "
                f"more than its {classes[physical].capacity_gpus}."
            )
    for pk in sorted(reserved, key=lambda pk: classes[pk].slug):
        gpu_class = classes[pk]
        physical = classes[gpu_class.physical_class_id or pk]
        free_gpus = physical.capacity_gpus - kept.get(physical.pk, Fraction(0))
        free = max(int(free_gpus / gpu_class.fraction), 0)
        groups.setdefault(gpu_resource(gpu_class), []).append(
            {
                "name": gpu_class.slug,
                "resources": [{"name": gpu_resource(gpu_class), "nominalQuota": free}],
            }
        )
    return Manifest(
        None,
        {
            "apiVersion": KUEUE_API,
            "kind": "ClusterQueue",
            "metadata": _meta(settings.CLUSTER_COHORT + "-shared", {MANAGED_BY_LABEL: MANAGED_BY}),
            "spec": {
                "cohort": settings.CLUSTER_COHORT,
                "queueingStrategy": "BestEffortFIFO",
                "resourceGroups": [
                    {"coveredResources": [resource], "flavors": flavors}
                    for resource, flavors in sorted(groups.items())
                ],
            },
        },
    )


def render(*, at: dt.datetime | None = None) -> Fleet:
    """What every cluster should hold at ``at`` (default now); raises :class:`RenderError`
    with every problem when any object cannot be rendered."""
    at = at or timezone.now()
    classes = {c.pk: c for c in GpuClass.objects.all()}
    entries = _departments(at)
    errors = _check_names(entries, classes)
    clusters = [(c.pk, c.slug, c.name) for c in Cluster.objects.order_by("slug")] or [
        (None, settings.CLUSTER_DEFAULT_SLUG, "The fleet")
    ]
    fleet = Fleet([])
    for cluster_id, cluster_slug, cluster_name in clusters:
        out = ClusterManifests(cluster_slug, cluster_name)
        claimed: dict[str, Department] = {}
        reserved: dict[int, int] = {}
        for entry in entries:
            # A name claimed in every cluster and again in this one by the same department
            # is one namespace here.
            here = list(
                {n.name: n for n in entry.namespaces if n.cluster_id in (None, cluster_id)}.values()
            )
            for namespace in here:
                other = claimed.setdefault(namespace.name, entry.department)
                if other != entry.department:
                    errors.append(
                        f"Namespace {namespace.name} in cluster {cluster_slug} is claimed by "
                        f"both {other.name} and {entry.department.name}; remove one claim."
                    )
            if not here:
                continue
            manifests, kept, holds = _department_manifests(entry, here, classes, errors)
            out.manifests.extend(manifests)
            for pk, nominal in kept.items():
                reserved[pk] = reserved.get(pk, 0) + nominal
            if holds:
                out.holds[entry.department.slug] = holds
        out.manifests.extend(
            _flavor(classes[pk]) for pk in sorted(reserved, key=lambda pk: classes[pk].slug)
        )
        if reserved:
            out.manifests.append(_shared_queue(reserved, classes, errors, cluster_slug))
        out.manifests.sort(key=Manifest.sort_key)
        fleet.clusters.append(out)
    if errors:
        raise RenderError(list(dict.fromkeys(errors)))
    return fleet
