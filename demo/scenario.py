"""The demo scenario the portal exists for, loaded by ``manage.py seed_demo``.

Marketing renders lip-sync videos in batch, Customer Service runs a realtime virtual
agent, Training builds teaching assistants; they share 8 A100s and 16 T4s. The job kinds
they submit are stand-ins that run on any machine (``espeak-ng``, ``ffmpeg`` and small
Python programs in :mod:`demo.programs`); the production ones are in ``jobs/kinds/``. Seeding
is idempotent: it converges on this data whatever is there, so running it twice leaves
the same rows.

The same story as GPU usage (:func:`demo_history`) is what ``manage.py run_demo`` backfills
into its local Prometheus the first time it starts.
"""

import datetime as dt
import json
import random
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import RoleMapping
from billing.models import DepartmentMultiplier, RateCard
from core import roles
from departments.models import (
    Department,
    Enforcement,
    GpuClass,
    Membership,
    Namespace,
    OffPeakWindow,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
    WorkerPool,
)
from departments.services import department_set_namespaces
from jobs.kinds import job_kinds_load

DEMO_PASSWORD = "gpu-demo-2026"  # noqa: S105 - printed to the person who runs the demo
# The namespace of the portal's GPU workers: a worker pool. The demo's one local worker
# runs there (JOBS_WORKER_NAMESPACE), and stands for one pod per GPU class.
WORKER_POOL_NAMESPACE = "gpu-workers"
WORKER_POOL_DESCRIPTION = (
    "The portal's GPU workers: one Deployment per GPU class and tier (deploy/). In the "
    "demo, the one local worker, holding as many GPUs of each class as it runs jobs at once."
)


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
        "gpu_product": "NVIDIA-A100-SXM4-80GB",
        "capacity_gpus": 8,
        "queue_prefix": "gpu.a100",
        "description": "NVIDIA A100 80 GB, realtime-capable: low-latency LLM and speech for "
        "the virtual agent.",
    },
    {
        "slug": "t4",
        "name": "T4",
        "model_regex": ".*T4.*",
        "gpu_product": "Tesla-T4",
        "capacity_gpus": 16,
        "queue_prefix": "gpu.t4",
        "description": "NVIDIA T4 16 GB, for rendering: lip-sync video batches.",
    },
]

# GPU class slug: (price per GPU-hour for every tier, realtime price or None), in
# BILLING_CURRENCY, valid since the start of 2025.
RATE_CARDS = {"a100": (Decimal("3.20"), Decimal("4.00")), "t4": (Decimal("0.55"), None)}
RATE_CARDS_FROM = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# Namespaces whose work is of one tier (priced at that tier's card).
NAMESPACE_TIERS = {"dept-customer-service": Tier.REALTIME}
# slug: (multiplier, reason)
DEPARTMENT_MULTIPLIERS = {"training": (Decimal("0.8"), "Teaching subsidy: 20 % off")}

# Voices of espeak-ng that ship with the Debian package.
DEMO_VOICES = ["en-gb", "en-us", "en-gb-scotland", "de", "fr", "es", "it"]
_TEXT = {"type": "string", "minLength": 1, "maxLength": 1000}
_VOICE = {"type": "string", "enum": DEMO_VOICES, "default": "en-gb"}
_SPEED = {"type": "integer", "minimum": 80, "maximum": 300, "default": 160}

# The digital-human pipeline in miniature: each kind does on a CPU, in seconds, what its
# production counterpart (docs/job-kinds.md) does on a GPU. Parameters fill whole argv
# elements; those inside an ffmpeg filter are enums or bounded integers, never free text.
JOB_KINDS = [
    {
        "slug": "speech-synthesis",
        "name": "Speech synthesis",
        "description": "Text to speech with espeak-ng: speech.wav. Stands in for voice-cloning "
        "TTS (XTTS) on a GPU.",
        "argv_template": [
            "espeak-ng",
            *("-v", "{voice}", "-s", "{speed}", "-w", "{output_dir}/speech.wav"),
            "--",
            "{text}",
        ],
        "params_schema": {
            "type": "object",
            "properties": {"text": _TEXT, "voice": _VOICE, "speed": _SPEED},
            "required": ["text"],
            "additionalProperties": False,
        },
        "default_gpus": 1,
        "max_runtime_s": 120,
        "allowed_tiers": [Tier.REALTIME, Tier.INTERACTIVE, Tier.BATCH],
    },
    {
        "slug": "video-render",
        "name": "Video render",
        "description": "A short test-pattern video rendered by ffmpeg: render.mp4.",
        "argv_template": [
            "ffmpeg",
            *("-hide_banner", "-nostdin", "-loglevel", "warning", "-y"),
            *("-f", "lavfi", "-i", "color=c={colour}:s=640x360:r=25:d={seconds}"),
            *("-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d={seconds}"),
            "-filter_complex",
            "[0:v][1:v]overlay=(W-w)/2:(H-h)/2:shortest=1,format=yuv420p",
            *("-c:v", "libx264", "-preset", "veryfast"),
            "{output_dir}/render.mp4",
        ],
        "params_schema": {
            "type": "object",
            "properties": {
                "seconds": {"type": "integer", "minimum": 1, "maximum": 30, "default": 5},
                "colour": {
                    "type": "string",
                    "enum": ["navy", "teal", "maroon", "darkgreen", "purple", "black"],
                    "default": "navy",
                },
            },
            "additionalProperties": False,
        },
        "default_gpus": 1,
        "max_runtime_s": 300,
        "allowed_tiers": [Tier.INTERACTIVE, Tier.BATCH],
    },
    {
        "slug": "lipsync-render",
        "name": "Lip-sync render",
        "description": "The digital human's stand-in: espeak-ng speaks the text and ffmpeg "
        "renders a face whose mouth moves with it: talking-head.mp4 and speech.wav. "
        "Production runs Wav2Lip.",
        "argv_template": [
            "{python}",
            *("-m", "demo.programs.lipsync"),
            *("--voice", "{voice}", "--speed", "{speed}"),
            *("--output", "{output_dir}/talking-head.mp4"),
            "--",
            "{text}",
        ],
        "params_schema": {
            "type": "object",
            "properties": {"text": _TEXT, "voice": _VOICE, "speed": _SPEED},
            "required": ["text"],
            "additionalProperties": False,
        },
        "default_gpus": 1,
        "max_runtime_s": 600,
        "allowed_tiers": [Tier.INTERACTIVE, Tier.BATCH],
    },
    {
        "slug": "cpu-load",
        "name": "CPU load",
        "description": "Keeps a CPU busy for the given seconds, as a model keeps its GPU "
        "busy, and writes result.json: the quickest way to watch a job go through "
        "admission, a worker and metering.",
        "argv_template": ["{python}", "-m", "demo.programs.cpu_load", "--seconds", "{seconds}"],
        "params_schema": {
            "type": "object",
            "properties": {
                "seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30}
            },
            "additionalProperties": False,
        },
        "default_gpus": 1,
        "max_runtime_s": 660,
        "allowed_tiers": [Tier.REALTIME, Tier.INTERACTIVE, Tier.BATCH],
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
            # Two renders at once on the T4s; a third waits and starts when one ends.
            (QuotaKind.CONCURRENT_JOBS, 2, Enforcement.HARD_QUEUE, "", "t4", [100]),
            # At most 8 of the 16 T4s at once: the cluster's ResourceQuota and Kueue queue
            # hold its own workloads to the same.
            (QuotaKind.GPUS, 8, Enforcement.HARD_QUEUE, "", "t4", [100]),
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
            # The virtual agent's A100s, kept for it in the cluster (Kueue lends none of them);
            # soft: beyond them it is alerted, and borrows what the fleet has free.
            (QuotaKind.GPUS, 3, Enforcement.SOFT, "", "a100", [100]),
            (QuotaKind.JOBS_DAY, 5000, Enforcement.SOFT, "speech-synthesis", None, [80, 100]),
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


# The company's identity provider (demo/identity_provider.py, started by run_demo): its
# groups and what the portal maps them to, and the people in them, who sign in with
# "Sign in with the company account" and the demo password. Their roles come from their
# groups alone; the password accounts above keep the roles IT set by hand.
ROLE_MAPPINGS = [
    ("corp-finance", roles.FINANCE, None),
    ("corp-it-platform", roles.IT_ADMIN, None),
    ("marketing-leads", Membership.Role.MANAGER, "marketing"),
    ("marketing-staff", Membership.Role.MEMBER, "marketing"),
    ("service-desk-leads", Membership.Role.MANAGER, "customer-service"),
    ("training-staff", Membership.Role.MEMBER, "training"),
]
# username: (first name, last name, groups at the provider)
PROVIDER_PEOPLE = {
    "sso-finance": ("Farah", "Fontaine", ["corp-finance", "all-staff"]),
    "sso-marketing-lead": ("Mateo", "Moss", ["marketing-leads", "all-staff"]),
    "sso-trainer": ("Tilda", "Thorne", ["training-staff", "all-staff"]),
    # In no mapped group: signs in to a page that says so.
    "sso-newcomer": ("Nina", "Novak", ["all-staff", "cafeteria-committee"]),
}


def provider_people() -> list[dict]:
    """The provider's people as demo/identity_provider.py loads them."""
    return [
        {
            "username": username,
            "password": DEMO_PASSWORD,
            "first_name": first,
            "last_name": last,
            "groups": groups,
        }
        for username, (first, last, groups) in PROVIDER_PEOPLE.items()
    ]


def _seed_role_mappings(departments: dict) -> None:
    for group, role, dept_slug in ROLE_MAPPINGS:
        RoleMapping.objects.get_or_create(
            group=group,
            role=role,
            department=departments[dept_slug] if dept_slug else None,
            defaults={"note": "Demo mapping"},
        )


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

    job_kinds_load(JOB_KINDS, activate=True)

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

    _seed_prices(gpu_classes, departments)
    _seed_worker_pool()
    _seed_role_mappings(departments)

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
    return demo_logins()


def _seed_prices(gpu_classes: dict, departments: dict) -> None:
    """Rate cards (A100 dearer for realtime work), the virtual agent's namespace marked
    realtime, and Training's subsidy."""
    for slug, (price, realtime) in RATE_CARDS.items():
        for tier, tier_price in (("", price), (Tier.REALTIME, realtime)):
            if tier_price is None:
                continue
            _converge(
                RateCard,
                lookup={
                    "gpu_class": gpu_classes[slug],
                    "tier": tier,
                    "valid_from": RATE_CARDS_FROM,
                },
                values={
                    "price_per_gpu_hour": tier_price,
                    "currency": settings.BILLING_CURRENCY,
                    "valid_to": None,
                    "note": "Demo prices",
                },
            )
    for name, tier in NAMESPACE_TIERS.items():
        Namespace.objects.filter(name=name).exclude(tier=tier).update(tier=tier)
    for slug, (multiplier, reason) in DEPARTMENT_MULTIPLIERS.items():
        _converge(
            DepartmentMultiplier,
            lookup={"department": departments[slug], "valid_from": RATE_CARDS_FROM},
            values={"multiplier": multiplier, "reason": reason, "valid_to": None},
        )


def _seed_worker_pool() -> None:
    """The namespace where the demo's GPU worker stands: its jobs are billed to the
    departments that submit them, the rest of its allocation is pool idle."""
    _converge(
        WorkerPool,
        lookup={"namespace": WORKER_POOL_NAMESPACE, "cluster": None},
        values={"description": WORKER_POOL_DESCRIPTION},
    )


def demo_logins() -> list[DemoLogin]:
    """The demo's logins, to print: who signs in as what (the password is ``DEMO_PASSWORD``)."""
    return [
        DemoLogin(
            username=username,
            role=group or role,
            department=DEPARTMENTS[dept_slug][0] if dept_slug else "all departments",
        )
        for username, (_, _, group, dept_slug, role) in USERS.items()
    ]


# --- Demo GPU history ----------------------------------------------------------------------
#
# Ninety days of what the departments did on the fleet, as kube-state-metrics, the DCGM
# exporter and the virtual agent's latency histogram would have recorded it. `run_demo`
# backfills it into the local Prometheus once, so the ledger and the charts have a story to
# tell as soon as the demo starts.

A100_MODEL = "NVIDIA-A100-SXM4-80GB"
T4_MODEL = "Tesla-T4"
UNKNOWN_MODEL = "NVIDIA-L4"  # no demo GPU class matches it: *Unknown model*
WORKER_MODELS = {"a100": A100_MODEL, "t4": T4_MODEL}  # the demo worker's pods, by GPU class
UNOWNED_NAMESPACE = "team-research"  # no demo department owns it: *Unallocated*
HISTORY_DAYS = 90
HISTORY_SEED = 2026
# One sample a minute keeps 90 days quick to write and to backfill. Backfilled series have
# no staleness markers, so the server's lookback must be just over the step (see
# demo.local_prometheus).
HISTORY_STEP_S = 60
HISTORY_LOOKBACK_DELTA = "61s"
# promtool should not write into the last 3 hours (a running server's head block); node
# labels run an hour past the last pod and finished pods linger 10 minutes, so the pods stop
# 5 hours before the current hour.
HISTORY_END_MARGIN = dt.timedelta(hours=5)
# Latency buckets (seconds); 0.8 is the virtual agent's realtime target.
LATENCY_BOUNDS = (0.1, 0.25, 0.5, 0.8, 2.0)

_DAY = dt.timedelta(days=1)


def _namespace(slug: str) -> str:
    return DEPARTMENTS[slug][2][0]


@dataclass(frozen=True)
class DemoHistory:
    """The demo's GPU usage over ``[start, end)``: pods and the agent's latency."""

    start: dt.datetime
    end: dt.datetime
    pods: list
    latencies: list


def demo_history(
    *, end: dt.datetime, days: int = HISTORY_DAYS, seed: int = HISTORY_SEED
) -> DemoHistory:
    """What the demo departments ran on the GPUs in the ``days`` before ``end``.

    Deterministic: the same arguments give the same history. Marketing renders lip-sync
    videos in batch on T4s (many 10-60 minute pods, mostly at night); Customer Service's
    virtual agent holds an A100 around the clock and a second one through the working day,
    and answers requests whose latency rises at the daytime peak; Training runs multi-GPU
    A100 jobs of hours, each sometimes followed by an evaluation on an L4 that no GPU class
    matches; a research team nobody owns in the portal runs T4 notebooks.
    """
    from demo.synthetic import LatencyProfile, Pod

    end = end.astimezone(dt.UTC)
    start = end - days * _DAY
    rng = random.Random(seed)  # noqa: S311 - a reproducible story, not a secret
    marketing, service, training = (_namespace(s) for s in DEPARTMENTS)
    pods: list[Pod] = []
    latencies: list[LatencyProfile] = []
    training_free_at = start
    first_day = start.replace(hour=0, minute=0, second=0, microsecond=0) - _DAY

    def at(day: dt.datetime, hours: float) -> dt.datetime:
        return day + dt.timedelta(seconds=round(hours * 3600))

    def run(namespace, name, model, gpus, begin, hours, utilisation_pct) -> None:
        finish = min(begin + dt.timedelta(hours=hours), end)
        begin = max(begin, start)
        if begin < finish:
            pods.append(Pod(namespace, name, model, gpus, begin, finish, "", utilisation_pct))

    day = first_day
    while day < end:
        weekday = day.weekday() < 5
        stamp = f"{day:%Y%m%d}"

        # Marketing: the nightly render batch from 23:00, and a few previews by day.
        for index in range(rng.randint(14, 30) if weekday else rng.randint(4, 10)):
            name = f"lipsync-render-{stamp}-{index:03d}"
            gpus = 2 if rng.random() < 0.1 else 1
            begin, minutes = at(day, 23 + rng.uniform(0, 7)), rng.uniform(10, 60)
            run(marketing, name, T4_MODEL, gpus, begin, minutes / 60, rng.uniform(70, 95))
        for index in range(rng.randint(0, 4) if weekday else 0):
            name = f"lipsync-preview-{stamp}-{index:03d}"
            begin, minutes = at(day, rng.uniform(9, 18)), rng.uniform(10, 25)
            run(marketing, name, T4_MODEL, 1, begin, minutes / 60, 80.0)

        # Customer Service: one A100 always (redeployed on Mondays), a second by day.
        if day.weekday() == 0 or day == first_day:
            days_left = 7 - day.weekday()
            run(service, f"virtual-agent-{stamp}", A100_MODEL, 1, day, 24 * days_left, 35.0)
        if weekday or rng.random() < 0.3:
            begin = at(day, (8 if weekday else 11) + rng.uniform(-0.5, 0.5))
            finish = at(day, (19 if weekday else 16) + rng.uniform(-0.5, 1))
            hours = (finish - begin) / dt.timedelta(hours=1)
            name = f"virtual-agent-peak-{stamp}"
            run(service, name, A100_MODEL, 1, begin, hours, rng.uniform(65, 90))
        slow_day = rng.random() < 0.15  # the daytime p95 misses the 800 ms target
        for begin_h, finish_h, requests_per_s, fractions in (
            (0, 8, 2, (0.6, 0.93, 0.985, 0.997, 0.9995)),
            (8, 19, 30 if weekday else 8, (0.3, 0.7, 0.86, 0.93 if slow_day else 0.965, 0.995)),
            (19, 24, 10, (0.45, 0.85, 0.95, 0.985, 0.999)),
        ):
            begin, finish = max(at(day, begin_h), start), min(at(day, finish_h), end)
            if begin < finish:
                latencies.append(
                    LatencyProfile(
                        service,
                        begin,
                        # Profiles of one series may not share a sample: stop a step early.
                        finish - dt.timedelta(seconds=HISTORY_STEP_S),
                        requests_per_s=requests_per_s * rng.uniform(0.8, 1.2),
                        bucket_fractions=dict(zip(LATENCY_BOUNDS, fractions, strict=True)),
                    )
                )

        # Training: one multi-GPU job at a time, for hours; some are evaluated on an L4.
        if rng.random() < 0.45:
            begin, hours = at(day, rng.uniform(7, 21)), rng.uniform(3, 14)
            gpus = rng.choice([2, 4, 4, 6])
            if begin >= training_free_at:
                name = f"assistant-train-{stamp}"
                run(training, name, A100_MODEL, gpus, begin, hours, rng.uniform(85, 98))
                finish = begin + dt.timedelta(hours=hours)
                training_free_at = finish + dt.timedelta(hours=1)
                if rng.random() < 0.5:
                    begin = finish + dt.timedelta(minutes=rng.uniform(10, 40))
                    name = f"assistant-eval-{stamp}"
                    run(training, name, UNKNOWN_MODEL, 1, begin, rng.uniform(0.3, 1.5), 60.0)

        # A research team's notebooks, in a namespace no department owns.
        if weekday and rng.random() < 0.5:
            begin, hours = at(day, rng.uniform(9, 16)), rng.uniform(1, 4)
            name = f"notebook-{stamp}"
            run(UNOWNED_NAMESPACE, name, T4_MODEL, 1, begin, hours, rng.uniform(15, 40))

        day += _DAY
    return DemoHistory(start=start, end=end, pods=pods, latencies=latencies)


def demo_worker_pool_exporter_start(*, port: int, gpus_per_class: int) -> None:
    """Serve, on 127.0.0.1:``port``, what kube-state-metrics would say of the demo's worker
    pods: in the worker pool namespace, one running pod per GPU class on a node of that
    model, requesting ``gpus_per_class`` GPUs (as many as the local worker runs jobs at
    once). The demo's Prometheus scrapes it, so the pool's allocation is metered like any
    namespace's and its idle shows beside the jobs' GPU time. A stand-in for the one thing
    a laptop has no kube-state-metrics for; a daemon thread of the calling process.

    Beside them, what kube-state-metrics and Kueue would say of a cluster that applied the
    portal's objects, one hand edit planted (:mod:`demo.cluster_standin`), for the drift
    check to compare."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    from demo.cluster_standin import ClusterStandIn

    registry = CollectorRegistry()
    requests = Gauge(
        "kube_pod_container_resource_requests",
        "Resources requested by a container.",
        ["namespace", "pod", "container", "node", "resource", "unit"],
        registry=registry,
    )
    phase = Gauge(
        "kube_pod_status_phase",
        "The pods current phase.",
        ["namespace", "pod", "phase"],
        registry=registry,
    )
    node_labels = Gauge(
        "kube_node_labels",
        "Kubernetes labels converted to Prometheus labels.",
        ["node", "label_nvidia_com_gpu_product"],
        registry=registry,
    )
    for slug, model in WORKER_MODELS.items():
        pod, node = f"demo-worker-{slug}", f"demo-node-{slug}"
        requests.labels(
            namespace=WORKER_POOL_NAMESPACE,
            pod=pod,
            container="worker",
            node=node,
            resource="nvidia_com_gpu",
            unit="integer",
        ).set(gpus_per_class)
        phase.labels(namespace=WORKER_POOL_NAMESPACE, pod=pod, phase="Running").set(1)
        node_labels.labels(node=node, label_nvidia_com_gpu_product=model).set(1)
    registry.register(ClusterStandIn())
    start_http_server(port, addr="127.0.0.1", registry=registry)


@dataclass(frozen=True)
class DemoHistoryWritten:
    """What :func:`demo_history_write` did, for the person watching the demo start."""

    start: dt.datetime
    end: dt.datetime
    samples: int
    write_s: float
    backfill_s: float


def demo_history_span(data_dir: Path) -> tuple[dt.datetime, dt.datetime] | None:
    """From the oldest to the newest sample of the TSDB blocks in ``data_dir``; ``None``
    when it holds no block (missing, empty, or only a server's write-ahead log)."""
    times = []
    for meta in Path(data_dir).glob("*/meta.json"):
        block = json.loads(meta.read_text(encoding="utf-8"))
        times += [block["minTime"], block["maxTime"]]
    if not times:
        return None
    return tuple(dt.datetime.fromtimestamp(ms / 1000, dt.UTC) for ms in (min(times), max(times)))


def demo_history_write(
    *, data_dir: Path, days: int = HISTORY_DAYS, now: dt.datetime | None = None
) -> DemoHistoryWritten:
    """Make ``data_dir`` hold the demo history of the ``days`` up to 5 hours before the
    current hour, as TSDB blocks (``promtool tsdb create-blocks-from openmetrics``), and
    nothing else: what was there is replaced. The blocks are built next to it and moved in
    when complete, so an interrupted build leaves no half-built history behind.

    Needs ``promtool`` and no Prometheus running on ``data_dir``."""
    from demo import local_prometheus, synthetic

    now = now or dt.datetime.now(dt.UTC)
    end = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) - HISTORY_END_MARGIN
    history = demo_history(end=end, days=days)
    data_dir = Path(data_dir)
    building = data_dir.with_name(data_dir.name + ".building")
    openmetrics = data_dir.with_name(data_dir.name + "-history.om")
    shutil.rmtree(building, ignore_errors=True)
    try:
        started = time.monotonic()
        samples = synthetic.write_openmetrics(
            openmetrics, pods=history.pods, latencies=history.latencies, step_s=HISTORY_STEP_S
        )
        written = time.monotonic()
        local_prometheus.backfill(openmetrics, building)
        backfilled = time.monotonic()
        shutil.rmtree(data_dir, ignore_errors=True)
        building.rename(data_dir)
    finally:
        openmetrics.unlink(missing_ok=True)
        shutil.rmtree(building, ignore_errors=True)
    return DemoHistoryWritten(
        start=history.start,
        end=history.end,
        samples=samples,
        write_s=written - started,
        backfill_s=backfilled - written,
    )


def demo_history_ensure(
    *, data_dir: Path, days: int = HISTORY_DAYS, rebuild: bool = False
) -> DemoHistoryWritten | None:
    """Write the demo history into ``data_dir`` unless it already holds TSDB blocks (from
    an earlier start, with whatever the server added since); ``rebuild`` writes it anyway.
    Returns what was written, or ``None`` when the history there was kept."""
    if demo_history_span(data_dir) is not None and not rebuild:
        return None
    return demo_history_write(data_dir=data_dir, days=days)
