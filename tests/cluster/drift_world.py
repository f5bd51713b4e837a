"""A small fleet for the drift tests: what the portal renders for it, and the series a
cluster holding exactly that would give Prometheus."""

from dataclasses import dataclass
from decimal import Decimal

from cluster.drift import Observed
from departments.models import Enforcement, QuotaKind, Tier
from tests import factories

T4_PRODUCT = "Tesla-T4"


@dataclass
class Fleet:
    departments: dict


def drift_world() -> Fleet:
    """Five departments in the one cluster, each with a namespace ``dept-<slug>``, batch
    work on T4 (16 of them) and a hard quota of GPUs:

    - ``insync`` (4 GPUs), ``marketing`` (8 GPUs, cost centre CC-4100), ``research``
      (2 GPUs);
    - ``held``: a hard monthly budget of 10 GPU-hours with 20 reserved by a running job,
      so its queue is held;
    - ``lifted``: the same job under a budget grown to 100 GPU-hours: not held."""
    t4 = factories.GpuClassFactory(
        slug="t4", name="T4", model_regex=".*T4.*", gpu_product=T4_PRODUCT, capacity_gpus=16
    )
    departments = {}
    for slug, cost_centre, gpus in [
        ("insync", "CC-1000", 4),
        ("marketing", "CC-4100", 8),
        ("research", "CC-5000", 2),
        ("held", "CC-6000", 2),
        ("lifted", "CC-7000", 2),
    ]:
        department = factories.DepartmentFactory(
            slug=slug, name=slug.title(), cost_centre=cost_centre
        )
        factories.NamespaceFactory(name=f"dept-{slug}", department=department)
        factories.ServiceLevelFactory(department=department, tier=Tier.BATCH, gpu_classes=[t4])
        factories.QuotaFactory(
            department=department,
            kind=QuotaKind.GPUS,
            limit=Decimal(gpus),
            enforcement=Enforcement.HARD_QUEUE,
        )
        departments[slug] = department
    for slug, budget in [("held", 10), ("lifted", 100)]:
        factories.QuotaFactory(
            department=departments[slug],
            kind=QuotaKind.GPU_HOURS_MONTH,
            limit=Decimal(budget),
            enforcement=Enforcement.HARD_REJECT,
        )
        factories.GenerationJobFactory(
            department=departments[slug],
            gpu_class=t4,
            state="running",
            gpu_hours_reserved=Decimal("20"),
        )
    return Fleet(departments)


COST_CENTRES = {
    "insync": "CC-1000",
    "marketing": "CC-4100",
    "research": "CC-5000",
    "held": "CC-6000",
    "lifted": "CC-7000",
}
GPUS = {"insync": 4, "marketing": 8, "research": 2, "held": 2, "lifted": 2}


def namespace_labels(slug: str) -> dict[str, str]:
    """The labels kube-state-metrics exports for ``dept-<slug>`` as rendered."""
    return {
        "label_app_kubernetes_io_managed_by": "gpu-chargeback-portal",
        "label_gpu_chargeback_portal_department": slug,
        "label_gpu_chargeback_portal_cost_centre": COST_CENTRES[slug],
    }


def observed_in_sync() -> Observed:
    """What Prometheus shows of a cluster that holds exactly what the portal renders for
    :func:`drift_world` (written out by hand, not derived from the rendering)."""
    observed = Observed()
    observed.phases["kube-system"] = {"Active"}
    for slug, gpus in GPUS.items():
        namespace = f"dept-{slug}"
        observed.phases[namespace] = {"Active"}
        observed.namespace_labels[namespace] = {
            name: {value} for name, value in namespace_labels(slug).items()
        }
        observed.quotas[(namespace, "gpu")] = {"requests.nvidia.com/gpu": {Decimal(gpus)}}
        observed.queue_statuses[slug] = {"pending" if slug == "held" else "active"}
        # Batch work keeps no T4 of its own: it borrows up to its hard quota from the
        # cohort's shared queue (which holds no department's namespace).
        observed.queue_limits.setdefault("nominalQuota", {})[slug] = {
            ("t4", "nvidia.com/gpu"): {Decimal(0)}
        }
        observed.queue_limits.setdefault("borrowingLimit", {})[slug] = {
            ("t4", "nvidia.com/gpu"): {Decimal(gpus)}
        }
        observed.queue_cohorts[slug] = {"gpu-fleet"}
    return observed
