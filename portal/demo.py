"""The demo scenario the portal exists for, loaded by ``manage.py seed_demo``.

Marketing renders lip-sync videos in batch, Customer Service runs a realtime virtual
agent, Training builds teaching assistants; they share 8 A100s and 16 T4s. Seeding is
idempotent: it converges on this data whatever is there, so running it twice leaves the
same rows.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from departments.models import (
    Department,
    Enforcement,
    GpuClass,
    Membership,
    OffPeakWindow,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from departments.services import department_set_namespaces
from portal import roles

DEMO_PASSWORD = "gpu-demo-2026"  # noqa: S105 - printed to the person who runs the demo


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    department: str


GPU_CLASSES = [
    {
        "slug": "a100",
        "name": "A100",
        "model_regex": ".*A100.*",
        "capacity_gpus": 8,
        "queue_prefix": "gpu.a100",
        "description": "NVIDIA A100 80 GB, realtime-capable: low-latency LLM and speech for "
        "the virtual agent.",
    },
    {
        "slug": "t4",
        "name": "T4",
        "model_regex": ".*T4.*",
        "capacity_gpus": 16,
        "queue_prefix": "gpu.t4",
        "description": "NVIDIA T4 16 GB, for rendering: lip-sync video batches.",
    },
]

# slug: (name, cost centre, namespaces, quotas, service levels)
# quota: (kind, limit, enforcement, job kind, gpu class slug, alert thresholds)
# service level: (tier, priority, latency ms, max wait s, gpu class slugs, preemptible, off-peak)
DEPARTMENTS = {
    "marketing": (
        "Marketing",
        "CC-4100",
        ["dept-marketing"],
        [
            (QuotaKind.JOBS_DAY, 50, Enforcement.HARD_QUEUE, "lipsync-render", None, [80, 100]),
            (QuotaKind.GPU_HOURS_MONTH, 1200, Enforcement.HARD_QUEUE, "", None, [80, 100]),
        ],
        [
            (Tier.BATCH, 2, None, 8 * 3600, ["t4"], True, True),
            (Tier.INTERACTIVE, 5, 5000, 600, ["t4"], False, False),
        ],
    ),
    "customer-service": (
        "Customer Service",
        "CC-5200",
        ["dept-customer-service"],
        [
            # The virtual agent must never be refused: its budget alerts, it does not block.
            (QuotaKind.GPU_HOURS_MONTH, 4000, Enforcement.SOFT, "", None, [80, 100]),
            (QuotaKind.GPUS, 6, Enforcement.SOFT, "", "a100", [100]),
        ],
        [
            (Tier.REALTIME, 9, 800, 2, ["a100"], False, False),
            (Tier.INTERACTIVE, 6, 2000, 60, ["a100", "t4"], False, False),
        ],
    ),
    "training": (
        "Training",
        "CC-6300",
        ["dept-training"],
        [
            (QuotaKind.GPU_HOURS_MONTH, 800, Enforcement.HARD_REJECT, "", None, [50, 80, 100]),
            (QuotaKind.CONCURRENT_JOBS, 4, Enforcement.HARD_QUEUE, "", None, [100]),
        ],
        [
            (Tier.INTERACTIVE, 5, 3000, 300, ["a100", "t4"], False, False),
            (Tier.BATCH, 1, None, 24 * 3600, ["t4"], True, True),
        ],
    ),
}

# username: (first name, last name, organisation group or None, department slug, role)
USERS = {
    "finance": ("Fiona", "Fischer", roles.FINANCE, None, None),
    "it-admin": ("Ivan", "Iturbe", roles.IT_ADMIN, None, None),
    "marketing-manager": ("Mara", "Marsh", None, "marketing", Membership.Role.MANAGER),
    "marketing-member": ("Milo", "Moreau", None, "marketing", Membership.Role.MEMBER),
    "cs-manager": ("Chloe", "Serrano", None, "customer-service", Membership.Role.MANAGER),
    "cs-member": ("Carlos", "Santos", None, "customer-service", Membership.Role.MEMBER),
    "training-manager": ("Tara", "Tanaka", None, "training", Membership.Role.MANAGER),
    "training-member": ("Tom", "Turner", None, "training", Membership.Role.MEMBER),
}


def _converge(model, *, lookup: dict, values: dict):
    """Get or create the row at ``lookup`` and give it ``values``, writing only what
    differs, so that seeding again changes nothing (``updated_at`` included)."""
    obj = model.objects.filter(**lookup).first()
    if obj is None:
        return model.objects.create(**lookup, **values)
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    if changed:
        obj.save()
    return obj


@transaction.atomic
def demo_seed() -> list[DemoLogin]:
    """Make the database hold the demo scenario; returns the logins to print.

    Idempotent over its own data: rows are found by their slug or name and brought back to
    the scenario's values. Demo rows that someone renamed in the admin are not recognised
    and may collide with the ones it creates; start from ``make clean`` in that case."""
    gpu_classes = {}
    for spec in GPU_CLASSES:
        gpu_classes[spec["slug"]] = _converge(
            GpuClass,
            lookup={"slug": spec["slug"]},
            values={k: v for k, v in spec.items() if k != "slug"},
        )

    _converge(
        OffPeakWindow,
        lookup={"name": "Nightly off-peak"},
        values={
            "weekdays": list(range(7)),
            "start_time": dt.time(23, 0),
            "end_time": dt.time(7, 0),
            "time_zone": settings.TIME_ZONE,
            "price_multiplier": Decimal("0.6"),
            "active": True,
        },
    )

    departments = {}
    for slug, (name, cost_centre, namespaces, quotas, slas) in DEPARTMENTS.items():
        department = _converge(
            Department,
            lookup={"slug": slug},
            values={"name": name, "cost_centre": cost_centre, "active": True},
        )
        departments[slug] = department
        department_set_namespaces(department=department, namespaces=namespaces)
        for kind, limit, enforcement, job_kind, gpu_slug, thresholds in quotas:
            _converge(
                Quota,
                lookup={
                    "department": department,
                    "kind": kind,
                    "job_kind": job_kind,
                    "gpu_class": gpu_classes.get(gpu_slug),
                },
                values={
                    "limit": Decimal(limit),
                    "enforcement": enforcement,
                    "alert_thresholds_pct": thresholds,
                },
            )
        for tier, priority, latency, wait, gpu_slugs, preemptible, off_peak in slas:
            sla = _converge(
                ServiceLevel,
                lookup={"department": department, "tier": tier},
                values={
                    "priority": priority,
                    "latency_target_ms": latency,
                    "max_queue_wait_s": wait,
                    "preemptible": preemptible,
                    "hold_for_off_peak": off_peak,
                },
            )
            sla.gpu_classes.set([gpu_classes[s] for s in gpu_slugs])

    logins = []
    User = get_user_model()
    for username, (first, last, group, dept_slug, role) in USERS.items():
        user = _converge(
            User,
            lookup={"username": username},
            values={
                "first_name": first,
                "last_name": last,
                "email": f"{username}@example.com",
                "is_active": True,
            },
        )
        if not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if group:
            user.groups.add(Group.objects.get(name=group))
        if dept_slug:
            _converge(
                Membership,
                lookup={"user": user, "department": departments[dept_slug]},
                values={"role": role},
            )
        logins.append(
            DemoLogin(
                username=username,
                role=group or role,
                department=departments[dept_slug].name if dept_slug else "all departments",
            )
        )
    return logins
