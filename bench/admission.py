"""How many job submissions a second does the REST API sustain, against a plain write?

gunicorn (``--workers`` 4 sync workers, one thread each) serves the portal on a throwaway
PostgreSQL database; ``--clients`` 16 client threads POST as fast as they can, each with
its own ``Authorization: Token <key>``, for ``--duration`` seconds to one endpoint, then
to the next, ``--repeat`` times (the order turns around each repeat; medians reported):

ours
    ``POST /api/v1/jobs/``: the whole submission. Serializer, ``job_validate``, the
    admission transaction that locks the department row and checks every quota that
    applies, the dispatch to a real Redis broker after commit, the answer serialized from
    the objects in hand.
baseline
    ``POST /bench/baseline/`` (``bench/urls.py``, served through ``bench/settings.py``,
    which is ``portal.settings`` with ``ROOT_URLCONF = "bench.urls"``): the same token
    authentication and ``IsAuthenticated``, the JSON body parsed, one ``INSERT`` of a
    GenerationJob row and a 201 JSON answer. Nothing can submit faster than this.
drf-baseline
    ``POST /bench/drf-baseline/`` (``bench/urls.py``): the bare baseline plus the DRF work
    every submission does whatever admission decides: the request read by
    ``JobSubmitSerializer`` (``is_valid``, which looks up the department among the user's,
    the kind and the GPU class), one ``INSERT`` of the job, and the answer written by
    ``JobSerializer``. No admission. The target is held against this one: the bare
    baseline does no serializer work at all, and the two serializers alone cost about
    its whole time.

The data makes admission do real work: ``--clients`` 16 departments, one per client,
and one shared department every client also submits to (every 5th request), each with
two service levels (batch on t4 or l4, interactive on a100) and five quotas, one of every
kind, small enough to fill within a department's first dozen requests::

    concurrent_jobs  hard_queue   on t4            2 jobs
    gpus             hard_queue   on a100          4 GPUs
    jobs_day         hard_reject  bench-quick      1 job
    gpu_hours_month  hard_reject  bench-long       8 GPU-hours
    gpu_hours_month  soft         all              8 GPU-hours (alerts at 80 and 100 %)

Clients cycle through eight submissions: three bench-small (1 GPU, 10 min) batch jobs on
t4, two bench-large (4 GPUs, 1 h) interactive jobs (a100, the SLA's only class), one
bench-long (1 GPU, 8 h) and two bench-quick (1 GPU, 1 min) batch jobs on l4, each with
its own idempotency key. No worker runs, so the quotas fill within seconds: later
submissions wait (201, state ``waiting``) or are refused (409); the shared department is
where 16 clients race for the same quotas.

Before every timed window the bench empties the job table (``TRUNCATE``) and the Redis
database, so each window starts alike. No job ends inside a window, so what is admitted
at its end is the most that was ever admitted in it, and after every window of ours the
bench checks in the database, without the portal's code, that no hard quota holds more
than its limit (jobs queued or running, their GPUs, jobs admitted per portal day,
reserved GPU-hours), that each hard_queue quota is full (its first waiting job does not
fit: the race was real), that every queued job was published (``dispatched_at`` set, and
as many messages in Redis), and that the HTTP answers match the rows (201 = queued +
waiting, 409 = rejected).

It prints requests per second of each, the ratios ours / baseline and ours /
drf-baseline (target >= 0.6 for the latter, PASS/FAIL), p50 and p95 latency, answers by
status. When the ratio is below the target (or with ``--profile``) it profiles
submissions in-process afterwards: SQL queries per submission by outcome (queued,
waiting, refused) and by the code that sent them (``connection.execute_wrapper``,
``CaptureQueriesContext``), the same for both baselines, the in-process ratios (mean time
of a baseline request / mean time of a submission), and a cProfile break-down.

Clients and server share the machine: on 2 cores the 16 client threads (one process,
``http.client``, a new connection per request as gunicorn's sync workers close each one)
take some of the CPU the server would otherwise have, for both endpoints alike.

Needs PostgreSQL (``postgres@127.0.0.1``, trust; database ``bench_admission`` created
with migrations and dropped at the end, ``--database-url`` names another) and Redis
(``--redis-url``, db 12 by default: emptied before each window and at the end, so give it
a database nothing else uses). Run from the repository root::

    .venv/bin/python bench/admission.py                  # 3 x 20 s per endpoint, ~3 min
    .venv/bin/python bench/admission.py --duration 5 --repeat 1   # a quick look
    .venv/bin/python bench/admission.py --json out.json  # the table, and JSON too

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import json
import logging
import os
import pstats
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from common import ROOT, bench_database, log
from common import setup_django as django_setup

from core import calendar

THIS = str(Path(__file__).resolve())

TARGET_RATIO = 0.6
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_admission"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
OURS_PATH = "/api/v1/jobs/"
BASELINE_PATH = "/bench/baseline/"
DRF_BASELINE_PATH = "/bench/drf-baseline/"
PATHS = {"ours": OURS_PATH, "baseline": BASELINE_PATH, "drf-baseline": DRF_BASELINE_PATH}
BASELINES = ("baseline", "drf-baseline")
SHARED = "bench-shared"
BASELINE_DEPARTMENT = "bench-baseline"  # bench/urls.py writes its rows there
SHARED_EVERY = 5  # every 5th request of a client goes to the shared department

# slug: (GPUs, max runtime s); a reservation is GPUs x runtime.
KINDS = {
    "bench-small": (1, 600),
    "bench-large": (4, 3600),
    "bench-long": (1, 8 * 3600),
    "bench-quick": (1, 60),
}
# (job kind, tier, GPU class named in the request or None for the SLA's only class)
MIX = (
    ("bench-small", "batch", "t4"),
    ("bench-large", "interactive", None),
    ("bench-small", "batch", "t4"),
    ("bench-long", "batch", "l4"),
    ("bench-quick", "batch", "l4"),
    ("bench-small", "batch", "t4"),
    ("bench-large", "interactive", None),
    ("bench-quick", "batch", "l4"),
)
GPU_CLASSES = (
    ("A100 80GB", "a100", r".*A100.*"),
    ("T4", "t4", r"Tesla-T4"),
    ("L4", "l4", r".*L4"),
)
SERVICE_LEVELS = (("batch", 2, ("t4", "l4")), ("interactive", 5, ("a100",)))
# kind, job kind, GPU class, limit, enforcement, alert thresholds. Small limits, so that
# every department's quotas fill (and refuse) within its first dozen requests even when
# the whole server manages only a few submissions a second.
QUOTAS = (
    ("concurrent_jobs", "", "t4", "2", "hard_queue", [100]),
    ("gpus", "", "a100", "4", "hard_queue", [100]),
    ("jobs_day", "bench-quick", None, "1", "hard_reject", [100]),
    ("gpu_hours_month", "bench-long", None, "8", "hard_reject", [100]),
    ("gpu_hours_month", "", None, "8", "soft", [80, 100]),
)


# --- the database, Redis and Django ------------------------------------------------------------


def database(url: str, *, reuse: bool, keep: bool):
    """A PostgreSQL database (row locks are what the bench measures)."""
    return bench_database(url, reuse=reuse, keep=keep, reused_means="its job table")


@contextlib.contextmanager
def redis_database(url: str) -> Iterator:
    """The broker's Redis database, emptied now and at the end."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SystemExit(f"Redis does not answer at {url}: {exc}") from exc
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        log(f"purged {url}")
        client.close()


def environment(database_url: str, redis_url: str, var_dir: Path) -> dict[str, str]:
    """The environment of both the bench and gunicorn: production-like settings (DEBUG
    off), plain HTTP on 127.0.0.1, mail thrown away, the broker on ``redis_url``."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "DEBUG": os.environ.get("DEBUG", "0"),
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-admission-only"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "EMAIL_URL": "dummymail://",
        "LOG_LEVEL": "WARNING",
        "PORTAL_VAR_DIR": str(var_dir),
        # Submissions are counted against the per-user rate as in production (the counter
        # is part of the cost measured), but the rate is set out of reach: a 429 would be a
        # cheap answer that flatters req/s, and 16 clients each submit far over 60 a minute.
        "JOBS_SUBMIT_RATE": os.environ.get("JOBS_SUBMIT_RATE", "1000000/m"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    os.environ.update(env)
    return {**os.environ, **env}


def setup_django() -> dict[str, str]:
    """Set Django up (the environment is :func:`environment`'s); returns the fingerprints
    of the measured code."""
    return django_setup(
        {},
        [
            "jobs.services.admission",
            "jobs.selectors",
            "jobs.api",
            "jobs.serializers",
            "jobs.dispatch",
        ],
    )


@dataclass(frozen=True)
class Client:
    number: int
    username: str
    token: str
    department: str


def prepare(clients: int) -> list[Client]:
    """Migrate; GPU classes, job kinds, departments with service levels and quotas; a
    member per client (of its own department and the shared one) with a token, and a
    manager with an e-mail address per department (quota alerts go to them)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from departments.models import (
        Department,
        GpuClass,
        Membership,
        Namespace,
        Quota,
        ServiceLevel,
    )
    from jobs.models import JobKind

    call_command("migrate", verbosity=0)
    classes = {
        slug: GpuClass.objects.update_or_create(
            slug=slug, defaults={"name": name, "model_regex": regex, "capacity_gpus": 64}
        )[0]
        for name, slug, regex in GPU_CLASSES
    }
    schema = {
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": 0, "maximum": 600, "default": 0},
            "text": {"type": "string", "maxLength": 200, "default": "done"},
        },
        "additionalProperties": False,
    }
    for slug, (gpus, runtime) in KINDS.items():
        JobKind.objects.update_or_create(
            slug=slug,
            defaults={
                "name": slug.replace("-", " ").title(),
                "argv_template": ["{python}", "-c", "import sys; print(sys.argv[1:])", "{text}"],
                "params_schema": schema,
                "default_gpus": gpus,
                "max_runtime_s": runtime,
                "allowed_tiers": ["realtime", "interactive", "batch"],
                "active": True,
            },
        )
    User = get_user_model()
    slugs = [f"bench-dept-{number:02d}" for number in range(clients)] + [SHARED]
    departments = {}
    for index, slug in enumerate([*slugs, BASELINE_DEPARTMENT]):
        department = Department.objects.update_or_create(
            slug=slug, defaults={"name": slug, "cost_centre": f"CC{index:04d}", "active": True}
        )[0]
        departments[slug] = department
        Namespace.objects.get_or_create(name=f"{slug}-ns", defaults={"department": department})
        manager = User.objects.update_or_create(
            username=f"{slug}-manager", defaults={"email": f"{slug}-manager@example.com"}
        )[0]
        Membership.objects.update_or_create(
            user=manager, department=department, defaults={"role": Membership.Role.MANAGER}
        )
        if slug == BASELINE_DEPARTMENT:
            continue
        for tier, priority, allowed in SERVICE_LEVELS:
            level = ServiceLevel.objects.update_or_create(
                department=department,
                tier=tier,
                defaults={"priority": priority, "hold_for_off_peak": False},
            )[0]
            level.gpu_classes.set([classes[slug] for slug in allowed])
        for kind, job_kind, gpu_class, limit, enforcement, thresholds in QUOTAS:
            Quota.objects.update_or_create(
                department=department,
                kind=kind,
                job_kind=job_kind,
                gpu_class=classes[gpu_class] if gpu_class else None,
                defaults={
                    "limit": Decimal(limit),
                    "enforcement": enforcement,
                    "alert_thresholds_pct": thresholds,
                },
            )
    result = []
    for number in range(clients):
        user = User.objects.update_or_create(
            username=f"bench-client-{number:02d}", defaults={"email": ""}
        )[0]
        for slug in (slugs[number], SHARED, BASELINE_DEPARTMENT):
            Membership.objects.update_or_create(
                user=user, department=departments[slug], defaults={"role": Membership.Role.MEMBER}
            )
        token = Token.objects.get_or_create(user=user)[0]
        result.append(Client(number, user.username, token.key, slugs[number]))
    return result


def reset(broker) -> None:
    """Empty the job table (and every table whose rows point at jobs: alerts, GPU time,
    statement lines) and the broker."""
    from django.db import connection

    from jobs.models import GenerationJob

    pointing = {
        relation.related_model._meta.db_table
        for relation in GenerationJob._meta.get_fields(include_hidden=True)
        if relation.auto_created and not relation.concrete
    }
    tables = ", ".join([*sorted(pointing), GenerationJob._meta.db_table])
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")  # table names from the models
    broker.flushdb()


# --- gunicorn ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(port: int, path: str = "/healthz") -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@contextlib.contextmanager
def gunicorn(*, workers: int, env: dict[str, str], log_path: Path) -> Iterator[int]:
    """gunicorn serving ``portal.wsgi`` with the bench's settings; yields its port. Stopped
    however the bench ends (SIGTERM, then SIGKILL to its process group)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        "1",
        "--worker-class",
        "sync",
        "--backlog",
        "2048",
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
    ]
    with log_path.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while not answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"gunicorn did not start:\n{tail}")
                time.sleep(0.2)
            log(f"gunicorn pid {process.pid} on 127.0.0.1:{port}, {workers} workers")
            yield port
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # any worker left behind
            log("gunicorn stopped")


# --- the clients ---------------------------------------------------------------------------------


def submission(client: Client, n: int, run: str) -> dict:
    """The ``n``-th request body of ``client``. Each client starts the cycle at its own
    place, so the shared department gets every kind of job from the start."""
    kind, tier, gpu_class = MIX[(n + client.number) % len(MIX)]
    body = {
        "department": SHARED if n % SHARED_EVERY == SHARED_EVERY - 1 else client.department,
        "kind": kind,
        "tier": tier,
        "params": {"seconds": 1, "text": f"bench {client.number} {n}"},
        "idempotency_key": f"{run}-{client.number}-{n}",
    }
    if gpu_class:
        body["gpu_class"] = gpu_class
    return body


@dataclass
class Window:
    """One timed run of every client against one endpoint."""

    endpoint: str  # ours | baseline | drf-baseline
    label: str = ""  # warm-up, #1, #2...
    seconds: float = 0.0  # the duration asked for
    in_time: int = 0  # requests answered within it
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)  # bodies of unexpected answers
    check: dict | None = None
    load: float = 0.0  # the machine's 1-minute load average at the end

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rps(self) -> float:
        """Answers within the window per second (the requests still in flight at its end
        are answered, and in the latencies, but not counted here)."""
        return self.in_time / self.seconds if self.seconds else 0.0

    def percentile(self, q: int) -> float:
        if len(self.latencies_s) < 2:
            return self.latencies_s[0] if self.latencies_s else 0.0
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[q - 1]

    def summary(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "label": self.label,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "answered_in_time": self.in_time,
            "rps": round(self.rps, 2),
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p95_ms": round(self.percentile(95) * 1000, 1),
            "statuses": dict(sorted(self.statuses.items())),
            "unexpected_samples": self.samples,
            "load_1min": self.load,
            "check": self.check,
        }


def run_window(
    endpoint: str, clients: list[Client], port: int, duration: float, label: str
) -> Window:
    """Every client POSTs to ``endpoint`` back to back for ``duration`` seconds; the window
    lasts until the last request begun in it has its answer."""
    path = PATHS[endpoint]
    window = Window(endpoint, label)
    run = uuid.uuid4().hex[:8]
    lock = threading.Lock()
    start = threading.Event()
    timing: dict[str, float] = {}

    def loop(client: Client) -> None:
        headers = {
            "Authorization": f"Token {client.token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        latencies, statuses, samples, in_time = [], Counter(), [], 0
        start.wait()
        deadline = timing["start"] + duration
        n = 0
        while (began := time.perf_counter()) < deadline:
            body = json.dumps(submission(client, n, run))
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                data, status = response.read(), response.status
            except (OSError, http.client.HTTPException) as exc:
                data, status = repr(exc).encode(), 0
            finally:
                connection.close()
            ended = time.perf_counter()
            latencies.append(ended - began)
            in_time += ended <= deadline
            statuses[status] += 1
            if status not in (201, 409) and len(samples) < 3:
                samples.append(f"{status}: {data[:300].decode(errors='replace')}")
            n += 1
        with lock:
            window.latencies_s.extend(latencies)
            window.in_time += in_time
            window.statuses.update(statuses)
            window.samples.extend(samples[: max(0, 5 - len(window.samples))])

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    timing["start"] = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    window.seconds = duration
    window.load = os.getloadavg()[0]
    return window


# --- checking admission in the database --------------------------------------------------------


def demand(quota, job) -> Decimal:
    if quota.kind in ("jobs_day", "concurrent_jobs"):
        return Decimal(1)
    if quota.kind == "gpus":
        return Decimal(job.gpus)
    return Decimal(job.gpus * job.max_runtime_s) / 3600


def check_admission(window: Window, broker) -> dict:
    """What the database holds after a window of ours, counted here (not with the portal's
    quota code): the use of every quota against its limit, whether each hard_queue quota
    is full, that admitted jobs were published, and that the answers match the rows."""
    from django.db.models import Count, Sum
    from django.db.models.functions import TruncDate

    from departments.models import Quota
    from jobs.models import GenerationJob
    from metering import selectors as metering_selectors

    zone = calendar.portal_zone()
    jobs_all = GenerationJob.objects.exclude(department__slug=BASELINE_DEPARTMENT)
    quotas = []
    for quota in Quota.objects.filter(department__slug__startswith="bench-").select_related(
        "department", "gpu_class"
    ):
        jobs = jobs_all.filter(department_id=quota.department_id)
        if quota.job_kind:
            jobs = jobs.filter(kind__slug=quota.job_kind)
        if quota.gpu_class_id is not None:
            jobs = jobs.filter(gpu_class_id=quota.gpu_class_id)
        active = jobs.filter(state__in=("queued", "running"))
        if quota.kind == "concurrent_jobs":
            use = Decimal(active.count())
        elif quota.kind == "gpus":
            use = Decimal(active.aggregate(n=Sum("gpus"))["n"] or 0)
        elif quota.kind == "jobs_day":
            per_day = (
                jobs.filter(admitted_at__isnull=False)
                .annotate(day=TruncDate("admitted_at", tzinfo=zone))
                .values("day")
                .annotate(n=Count("pk"))
            )
            use = Decimal(max((row["n"] for row in per_day), default=0))
        else:  # gpu_hours_month: reservations of what is admitted (nothing ends in a window)
            reserved = sum(
                (Decimal(g * s) / 3600 for g, s in active.values_list("gpus", "max_runtime_s")),
                Decimal(0),
            )
            metered = metering_selectors.quota_metered_gpu_hours(quota=quota)
            use = reserved + metered
        head = (
            jobs.filter(state="waiting", blocking_quota=quota)
            .order_by("-priority", "submitted_at")
            .first()
        )
        hard = quota.enforcement != "soft"
        quotas.append(
            {
                "department": quota.department.slug,
                "kind": quota.kind,
                "scope": quota.scope_display,
                "enforcement": quota.enforcement,
                "limit": float(quota.limit),
                "use": float(use),
                "over": hard and use > quota.limit,
                "full": head is not None and use + demand(quota, head) > quota.limit,
                "waiting_on_it": jobs.filter(state="waiting", blocking_quota=quota).count(),
                "refused_by_it": jobs.filter(state="rejected", blocking_quota=quota).count(),
            }
        )
    states = dict(jobs_all.values_list("state").annotate(n=Count("pk")))
    queued = jobs_all.filter(state="queued")
    messages = sum(
        broker.llen(key) for key in broker.scan_iter("gpu.*") if broker.type(key) == b"list"
    )
    created = states.get("queued", 0) + states.get("waiting", 0)
    hard_queue = [q for q in quotas if q["enforcement"] == "hard_queue"]
    return {
        "quotas": quotas,
        "states": states,
        "over_admitted": [q for q in quotas if q["over"]],
        "hard_queue_full": sum(q["full"] for q in hard_queue),
        "hard_queue_total": len(hard_queue),
        "not_full": [
            f"{q['department']} {q['kind']} ({q['scope']})" for q in hard_queue if not q["full"]
        ],
        "refused_by": dict(
            Counter(
                f"{q['kind']} {q['enforcement']}" for q in quotas for _ in range(q["refused_by_it"])
            )
        ),
        "queued_not_dispatched": queued.filter(dispatched_at__isnull=True).count(),
        "queued": queued.count(),
        "broker_messages": messages,
        "stuck_submitted": states.get("submitted", 0),
        "http_matches_rows": window.statuses.get(201, 0) == created
        and window.statuses.get(409, 0) == states.get("rejected", 0),
        "soft_exceeded": sum(
            1 for q in quotas if q["enforcement"] == "soft" and q["use"] > q["limit"]
        ),
        "alerts": _alert_count(),
    }


def _alert_count() -> int:
    from jobs.models import QuotaAlert

    return QuotaAlert.objects.count()


def check_ok(check: dict) -> bool:
    return (
        not check["over_admitted"]
        and check["queued_not_dispatched"] == 0
        and check["broker_messages"] == check["queued"]
        and check["stuck_submitted"] == 0
        and check["http_matches_rows"]
    )


# --- profile -----------------------------------------------------------------------------------


def query_origin() -> str:
    """Where the query being sent comes from: the innermost frame of the portal's own
    code, else the innermost frame outside Django's ORM (DRF, Django's auth...)."""
    frames = []
    frame = sys._getframe(2)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    root, venv = str(ROOT), str(ROOT / ".venv")
    for frame in frames:
        name = frame.f_code.co_filename
        if name.startswith(root) and not name.startswith(venv) and name != THIS:
            where = Path(name).relative_to(ROOT)
            return f"{where}:{frame.f_lineno} {frame.f_code.co_qualname}"
    skip = ("/django/db/", "/django/utils/", "contextlib.py", THIS)
    for frame in frames:
        name = frame.f_code.co_filename
        if not any(part in name for part in skip):
            tail = name.split("site-packages/")[-1]
            return f"{tail}:{frame.f_lineno} {frame.f_code.co_qualname}"
    return "?"


def profile_parts() -> list[tuple[str, Callable]]:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.serializers import Serializer

    from jobs import api, dispatch, selectors, serializers, services
    from jobs.services import admission

    return [
        ("JobViewSet.create (the whole view)", api.JobViewSet.create),
        ("  TokenAuthentication.authenticate", TokenAuthentication.authenticate),
        ("  JobSubmitSerializer (is_valid)", Serializer.is_valid),
        ("  services.job_submit", services.job_submit),
        ("    services.job_validate", services.job_validate),
        ("    admission._lock_department_with_quotas", admission._lock_department_with_quotas),
        ("    selectors.admission_figures", selectors.admission_figures),
        ("    admission._admit", admission._admit),
        ("      admission._waiting_ahead", admission._waiting_ahead),
        ("      admission._alert", admission._alert),
        ("    transaction commit", BaseDatabaseWrapper.commit),
        ("    dispatch.job_dispatch (on commit)", dispatch.job_dispatch),
        ("  selectors.jobs_for_user + get", selectors.jobs_for_user),
        ("  JobSerializer.to_representation", serializers.JobSerializer.to_representation),
        ("    selectors.waiting_position", selectors.waiting_position),
    ]


def profile_submissions(clients: list[Client], broker, count: int, path: Path) -> dict:
    """In-process submissions through Django's test client (middleware, DRF, the same
    settings as gunicorn): SQL queries per submission by outcome and by the code that
    sent them, the same for both baselines, and a cProfile break-down."""
    from django.db import connection
    from django.test import Client as TestClient
    from django.test.utils import CaptureQueriesContext

    warnings.filterwarnings("ignore", "No directory at", UserWarning)  # no collectstatic
    logging.getLogger("django.request").setLevel(logging.ERROR)  # every 409 is a warning
    http = TestClient()

    def post(client: Client, n: int, run: str, path: str):
        return http.post(
            path,
            data=json.dumps(submission(client, n, run)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {client.token}",
            HTTP_ACCEPT="application/json",
        )

    def outcome(response) -> str:
        if response.status_code == 201 and "state" in response.json():
            return response.json()["state"]
        return {409: "refused"}.get(response.status_code, str(response.status_code))

    results: dict = {"count": count}
    for endpoint, target in PATHS.items():
        reset(broker)
        run = uuid.uuid4().hex[:8]
        by_outcome: dict[str, list] = defaultdict(list)
        origins: dict[str, Counter] = defaultdict(Counter)
        sql_time: dict[str, Counter] = defaultdict(Counter)
        for i in range(count):
            client = clients[i % len(clients)]
            stack_counts: Counter = Counter()
            stack_time: Counter = Counter()

            def wrapper(execute, sql, params, many, context, counts=stack_counts, times=stack_time):
                origin = query_origin()
                began = time.perf_counter()
                try:
                    return execute(sql, params, many, context)
                finally:
                    counts[origin] += 1
                    times[origin] += time.perf_counter() - began

            with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(wrapper):
                began = time.perf_counter()
                response = post(client, i // len(clients), run, target)
                elapsed = time.perf_counter() - began
            kind = outcome(response) if endpoint == "ours" else str(response.status_code)
            by_outcome[kind].append((len(captured.captured_queries), elapsed))
            origins[kind].update(stack_counts)
            sql_time[kind].update(stack_time)
        results[endpoint] = {
            kind: {
                "requests": len(rows),
                "queries_per_request": round(statistics.mean(q for q, _ in rows), 2),
                "ms_per_request": round(statistics.mean(t for _, t in rows) * 1000, 2),
                "sql_ms_per_request": round(sum(sql_time[kind].values()) / len(rows) * 1000, 2),
                "queries_by_origin": {
                    origin: round(n / len(rows), 2) for origin, n in origins[kind].most_common()
                },
            }
            for kind, rows in sorted(by_outcome.items())
        }
        every = [row for rows in by_outcome.values() for row in rows]
        results[endpoint]["all"] = {
            "requests": len(every),
            "queries_per_request": round(statistics.mean(q for q, _ in every), 2),
            "ms_per_request": round(statistics.mean(t for _, t in every) * 1000, 2),
        }
    ours_ms = results["ours"]["all"]["ms_per_request"]
    results["ratios"] = {
        name: round(results[name]["all"]["ms_per_request"] / ours_ms, 3) for name in BASELINES
    }
    # cProfile over the same mix of ours.
    wanted = profile_parts()
    reset(broker)
    run = uuid.uuid4().hex[:8]
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for i in range(count):
        post(clients[i % len(clients)], i // len(clients), run, OURS_PATH)
    profiler.disable()
    total = time.perf_counter() - began
    profiler.dump_stats(path)
    rows = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {}
    for label, target in wanted:
        code = target.__code__
        key = (code.co_filename, code.co_firstlineno, code.co_name)
        parts[label] = rows[key][3] / count * 1000 if key in rows else 0.0
    top = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:12]
    results["cprofile"] = {
        "total_ms_per_request": total / count * 1000,
        "parts_ms_per_request": parts,
        "top_self": [
            {
                "function": f"{Path(filename).name}:{line} {function}",
                "self_ms_per_request": row[2] / count * 1000,
                "calls_per_request": row[1] / count,
            }
            for (filename, line, function), row in top
        ],
        "pstats_file": str(path),
    }
    reset(broker)
    return results


# --- report -----------------------------------------------------------------------------------


def summarize(windows: list[Window]) -> dict:
    ours = [w for w in windows if w.endpoint == "ours"]

    def median(values):
        return statistics.median(values) if values else 0.0

    def side(group: list[Window]) -> dict:
        statuses: Counter = Counter()
        for window in group:
            statuses.update(window.statuses)
        return {
            "rps": median([w.rps for w in group]),
            "p50_ms": median([w.percentile(50) * 1000 for w in group]),
            "p95_ms": median([w.percentile(95) * 1000 for w in group]),
            "requests": sum(w.requests for w in group),
            "statuses": dict(sorted(statuses.items())),
        }

    summary = {"ours": side(ours)}
    for name in BASELINES:
        base = [w for w in windows if w.endpoint == name]
        summary[name] = side(base)
        rps = summary[name]["rps"]
        summary[f"ratio_{name}"] = summary["ours"]["rps"] / rps if rps else 0.0
        # Each repeat's windows run back to back: their ratio is less exposed to what
        # else the machine does than the ratio of the medians.
        summary[f"paired_ratios_{name}"] = [
            o.rps / b.rps for o, b in zip(ours, base, strict=True) if b.rps
        ]
    # The target is held against the baseline that does the same DRF work.
    summary["ratio"] = summary["ratio_drf-baseline"]
    return summary


def report(results: dict) -> str:
    s = results["summary"]
    lines = [
        f"POST /api/v1/jobs/ against a token-authenticated one-row insert, bare and with "
        f"the submission's DRF serializers; gunicorn "
        f"{results['workers']} sync workers x 1 thread, {results['clients']} client threads, "
        f"{results['duration_s']:.0f} s per window, median of {results['repeat']}; "
        f"{results['cpus']} CPUs shared by clients and server; PostgreSQL "
        f"{results['postgres']}; broker {results['broker']}",
        "code measured (sha256): "
        + ", ".join(f"{p} {d}" for p, d in results["code_sha256"].items()),
        "",
    ]
    header = (
        f"{'endpoint':<22}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'requests':>10}"
        f"{'201':>8}{'409':>8}{'other':>7}"
    )
    lines += [header, "-" * len(header)]
    for name, label in (
        ("ours", "ours  /api/v1/jobs/"),
        ("baseline", "baseline"),
        ("drf-baseline", "drf-baseline"),
    ):
        side = s[name]
        st = side["statuses"]
        other = sum(n for code, n in st.items() if code not in (201, 409))
        lines.append(
            f"{label:<22}{side['rps']:>9.1f}{side['p50_ms']:>9.1f}{side['p95_ms']:>9.1f}"
            f"{side['requests']:>10,}{st.get(201, 0):>8,}{st.get(409, 0):>8,}{other:>7,}"
        )
    lines.append("")
    lines.append("windows (in the order run; load: the machine's 1-minute load average after it):")
    for w in results["windows"]:
        lines.append(
            f"  {w['label']:<4}{w['endpoint']:<13}{w['rps']:>8.1f} req/s  p50 {w['p50_ms']:>6.1f} "
            f"ms  p95 {w['p95_ms']:>6.1f} ms  load {w['load_1min']:>4.1f}  {w['statuses']}"
        )
    lines.append("")
    lines.append(
        "admission, checked in the database after each window of ours (no job ends in a "
        "window, so its end holds the most ever admitted in it):"
    )
    lines.append(
        f"  {'window':<9}{'queued':>7}{'waiting':>8}{'refused':>8}{'over limit':>11}"
        f"{'hard_queue full':>16}{'in Redis':>9}{'rows = answers':>15}"
    )
    checks = []
    for w in results["warmup"] + results["windows"]:
        c = w["check"]
        if not c:
            continue
        checks.append(c)
        st = c["states"]
        lines.append(
            f"  {w['label']:<9}{st.get('queued', 0):>7}{st.get('waiting', 0):>8}"
            f"{st.get('rejected', 0):>8}{len(c['over_admitted']):>11}"
            f"{c['hard_queue_full']:>11}/{c['hard_queue_total']:<4}"
            f"{c['broker_messages']:>9}{'yes' if c['http_matches_rows'] else 'NO':>15}"
        )
    timed = [w["check"] for w in results["windows"] if w["check"]]
    refused: Counter = Counter()
    for c in timed:
        refused.update(c["refused_by"])
    lines.append(
        f"  refused by (timed windows): {dict(sorted(refused.items()))}; soft quotas over "
        f"their limit (allowed): {sum(c['soft_exceeded'] for c in timed)}; quota alerts "
        f"recorded: {sum(c['alerts'] for c in timed)}; queued but not published: "
        f"{sum(c['queued_not_dispatched'] for c in checks)}; left 'submitted': "
        f"{sum(c['stuck_submitted'] for c in checks)}"
    )
    for c in timed:
        for q in c["over_admitted"]:
            lines.append(
                f"  OVER: {q['department']} {q['kind']} ({q['scope']}): {q['use']} > {q['limit']}"
            )
    not_full = sorted({name for c in timed for name in c["not_full"]})
    if not_full:
        shown = ", ".join(not_full[:6]) + (
            f" and {len(not_full) - 6} more" if len(not_full) > 6 else ""
        )
        lines.append(f"  hard_queue quotas not full after a timed window (no race shown): {shown}")
    shared_full = all(
        q["full"]
        for c in timed
        for q in c["quotas"]
        if q["department"] == SHARED and q["enforcement"] == "hard_queue"
    )
    lines.append(
        f"  the shared department's hard_queue quotas (all {results['clients']} "
        f"clients race there) full after every timed window: {'yes' if shared_full else 'NO'}"
    )
    over = sum(len(c["over_admitted"]) for c in checks)
    admission_ok = all(check_ok(c) for c in checks)
    ratio = s["ratio"]
    lines.append("")
    paired = ", ".join(f"{r:.2f}" for r in s["paired_ratios_baseline"])
    lines.append(f"ratio ours / baseline: {s['ratio_baseline']:.2f}; each repeat's own: {paired}")
    paired = ", ".join(f"{r:.2f}" for r in s["paired_ratios_drf-baseline"])
    lines.append(
        f"ratio ours / drf-baseline: {ratio:.2f} (target >= {TARGET_RATIO}): "
        f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}; each repeat's own: {paired}"
    )
    lines.append(
        f"admission correct ({over} quotas over their limit, every queued job published, "
        f"answers match rows): {'PASS' if admission_ok else 'FAIL'}"
    )
    profile = results.get("profile")
    if profile:
        lines.append("")
        lines.append(
            f"in-process profile ({profile['count']} submissions each, Django test client, "
            "same settings):"
        )
        for endpoint in PATHS:
            for kind, row in profile[endpoint].items():
                if kind == "all":
                    continue
                lines.append(
                    f"  {endpoint} {kind:<10} {row['requests']:>4} requests: "
                    f"{row['queries_per_request']:>5.1f} queries, {row['ms_per_request']:>6.2f} "
                    f"ms ({row['sql_ms_per_request']:.2f} ms in SQL)"
                )
                for origin, n in list(row["queries_by_origin"].items())[:24]:
                    lines.append(f"      {n:>5.2f}  {origin}")
        lines.append("  queries per submission by outcome (ours):")
        for kind, row in profile["ours"].items():
            lines.append(
                f"    {kind:<10}{row['queries_per_request']:>6.2f} queries  "
                f"{row['ms_per_request']:>7.2f} ms  ({row['requests']} requests)"
            )
        lines.append(
            "  in-process ratios (mean ms of a baseline request / mean ms of a submission): "
            + ", ".join(f"ours / {name} {r:.2f}" for name, r in profile["ratios"].items())
        )
        cp = profile["cprofile"]
        lines.append(
            f"  cProfile, ms per submission (total {cp['total_ms_per_request']:.1f} under the "
            f"profiler; {cp['pstats_file']}):"
        )
        for label, ms in cp["parts_ms_per_request"].items():
            lines.append(f"    {label:<44}{ms:>8.2f}")
        lines.append("    most time in the function itself:")
        for row in cp["top_self"]:
            lines.append(
                f"      {row['self_ms_per_request']:>6.2f} ms {row['calls_per_request']:>7.1f} x "
                f"{row['function']}"
            )
    return "\n".join(lines)


def postgres_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return cursor.fetchone()[0]


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Sustained job submissions through the REST API against a plain "
        "token-authenticated insert.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=16, help="client threads (and departments)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--duration", type=float, default=20, help="seconds per timed window")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up per endpoint")
    parser.add_argument("--repeat", type=int, default=3, help="timed windows per endpoint")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--reuse-database", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="broker; emptied")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"profile in-process even when the ratio is at least {TARGET_RATIO}",
    )
    parser.add_argument(
        "--profile-requests", type=int, default=320, help="submissions in the profile"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="results as JSON: on stdout instead of the table, or into PATH as well",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.workers < 1 or args.repeat < 1 or args.duration <= 0:
        parser.error("--clients, --workers, --repeat and --duration must be positive")
    return args


def _stop(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds the with blocks: gunicorn stops, database drops


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    with (
        tempfile.TemporaryDirectory(prefix="bench-admission-") as scratch,
        database(args.database_url, reuse=args.reuse_database, keep=args.keep_database) as url,
        redis_database(args.redis_url) as broker,
    ):
        env = environment(url, args.redis_url, Path(scratch))
        code = setup_django()
        return run(args, env, code, broker, Path(scratch))


def run(args: argparse.Namespace, env: dict, code: dict, broker, scratch: Path) -> int:
    from django.conf import settings

    began = time.perf_counter()
    clients = prepare(args.clients)
    log(f"prepared {len(clients)} clients and departments in {time.perf_counter() - began:.1f} s")
    windows: list[Window] = []
    warmup: list[Window] = []
    log_path = scratch / "gunicorn.log"
    with gunicorn(workers=args.workers, env=env, log_path=log_path) as port:
        for endpoint in PATHS:
            reset(broker)
            warm = run_window(endpoint, clients, port, args.warmup, "warm-up")
            if endpoint == "ours":
                warm.check = check_admission(warm, broker)
            warmup.append(warm)
            log(f"warm-up {endpoint}: {warm.rps:.1f} req/s {dict(warm.statuses)}")
        for number in range(args.repeat):
            order = list(PATHS) if number % 2 == 0 else list(reversed(PATHS))
            for endpoint in order:
                reset(broker)
                window = run_window(endpoint, clients, port, args.duration, f"#{number + 1}")
                if endpoint == "ours":
                    window.check = check_admission(window, broker)
                windows.append(window)
                log(
                    f"#{number + 1} {endpoint:8}: {window.rps:7.1f} req/s, p50 "
                    f"{window.percentile(50) * 1000:.1f} ms, p95 "
                    f"{window.percentile(95) * 1000:.1f} ms, {dict(window.statuses)}"
                )
    summary = summarize(windows)
    results: dict = {
        "clients": args.clients,
        "workers": args.workers,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "debug": settings.DEBUG,
        "postgres": postgres_version(),
        "broker": args.redis_url,
        "target_ratio": TARGET_RATIO,
        "code_sha256": code,
        "summary": summary,
        "windows": [w.summary() for w in windows],
        "warmup": [w.summary() for w in warmup],
    }
    if args.profile or summary["ratio"] < TARGET_RATIO:
        log(f"profiling {args.profile_requests} submissions in-process")
        results["profile"] = profile_submissions(
            clients,
            broker,
            args.profile_requests,
            Path(tempfile.gettempdir()) / f"admission-{os.getpid()}.pstats",
        )
    text = json.dumps(results, indent=2, default=str)
    if args.json and args.json != "-":
        Path(args.json).write_text(text + "\n")
    print(text if args.json == "-" else report(results))
    ok = all(check_ok(w.check) for w in warmup + windows if w.check)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
