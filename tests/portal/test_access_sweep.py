"""An access sweep: every route and every API operation, asked for another department's
objects by people outside it.

A third department, *Zeta Secret Lab*, gets one of everything (namespace, quota, SLA, a
finished job with output files, metered usage, a finalized statement, an adjustment and so
a second statement, a manager of its own and that manager's personal API token). Its
strings are *markers*. Then, as anonymous, marketing's member, marketing's manager and
training's manager:

- every named route of the URL configuration is requested (GET), its path parameters
  filled with Zeta's objects;
- every operation of the OpenAPI schema is requested: reads plain, in each format the
  schema offers (CSV, XLSX, PDF) and with each filter the schema declares pointed at Zeta,
  and each date parameter given hostile values (the calendar's edges, offsets PostgreSQL
  does not take, NaN); writes (POST, PATCH, PUT, DELETE) on Zeta's objects, and creations
  naming them, each also with a JSON body nested a thousand deep;
- a route or an operation with a parameter the tables below cannot fill fails the test, so
  a new endpoint cannot slip past the sweep.

Nothing may leak: a request naming a Zeta object answers 404 (or 403/405 where the role or
the method is refused before any lookup; 401 or a redirect to sign in for anonymous); a
filter naming Zeta answers as one naming nothing that exists; and no answer, whatever its
status, carries a marker in its body or headers (JSON, HTML with its inline chart data,
CSV, XLSX cells, PDF text), other than one the request itself carried. Writes change
nothing. Finance and IT are the control: they do read the markers.
"""

import contextlib
import datetime as dt
import io
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import unquote, urlencode

import openpyxl
import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from accounts import tokens
from accounts.models import ApiToken, RoleMapping
from billing import services
from billing.models import Adjustment, Statement
from core.calendar import month_bounds
from departments.models import (
    Department,
    Membership,
    Namespace,
    Quota,
    QuotaKind,
    ServiceLevel,
    Tier,
)
from jobs.models import GenerationJob
from metering.models import UsageRecord
from tests import factories
from tests.accounts.sign_in import provider_person, sign_in
from tests.billing.conftest import Ledger, hour
from tests.billing.test_exports import pdf_text
from tests.conftest import client_as
from tests.hostile_input import DATE_NAMES, HOSTILE_DATES

MARCH = dt.date(2026, 3, 1)
SWEPT_ROLES = [
    "anonymous",
    "member",
    "manager",
    "other_manager",
    # The same people as the identity provider signs them in (tests/oidc_provider.py): a
    # session from the provider's sign-in, and the provider's access token on the API.
    "provider_member",
    "provider_manager",
    "provider_token_manager",
]
CONTROL_ROLES = ["finance", "it_admin"]
TOKEN_ROLES = {"provider_token_manager"}
LOGIN_PATHS = ("/accounts/login/", "/admin/login/")

# Leaks found and not fixed yet: (role, request) pairs whose leak is reported but does not
# fail the test, each with why. Empty: nothing leaks.
KNOWN_LEAKS: set[tuple[str, str]] = set()

# Routes whose format-suffixed URLs (`.json`, `.csv`, `.api`, `.pdf`) answer 500 to anyone,
# whatever the id: the router adds a `format` keyword the action does not take
# (`TypeError: JobViewSet.files() got an unexpected keyword argument 'format'`, and the
# same for StatementViewSet.pdf). Not a leak, since an id that exists and one that does not
# answer alike (checked below against the same route naming nothing), but a bug to fix.
KNOWN_SERVER_ERRORS: set[str] = set()


# --- The secret department ------------------------------------------------------------------


@dataclass
class Secret:
    department: Department
    boss: object
    quota: Quota
    sla: ServiceLevel
    job: GenerationJob
    statement: Statement  # March, finalized
    next_statement: Statement  # April's draft, where the adjustment is charged
    adjustment: Adjustment
    rate_card: object
    markers: dict = field(default_factory=dict)
    channel: object = None  # an alert channel of Zeta's, with a delivery
    delivery: object = None
    role_mapping: object = None  # the identity provider's group that makes Zeta's managers
    token: object = None  # a personal API token of Zeta's manager


@pytest.fixture
def secret(world, settings) -> Secret:
    # /metrics is Prometheus' (every department's slug, spend and budgets): open only where
    # METRICS_TOKEN is blank, which the README tells to set wherever people reach the web
    # server. Swept as set, so the sweep's people, who have no token, read nothing there.
    settings.METRICS_TOKEN = "sweep-" + uuid.uuid4().hex
    zeta = factories.DepartmentFactory(
        slug="zeta-secret", name="Zeta Secret Lab", cost_centre="CC-SECRET-991"
    )
    factories.NamespaceFactory(name="ns-secret-zeta", department=zeta)
    _shared_cluster(), _shared_pool()  # shared objects the sweep reads and filters by
    boss = factories.UserFactory(username="zed-secret-boss", email="zed@secret-zeta.example")
    factories.MembershipFactory(user=boss, department=zeta, role=Membership.Role.MANAGER)
    quota = factories.QuotaFactory(
        department=zeta, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("4242.42")
    )
    sla = factories.ServiceLevelFactory(
        department=zeta, tier=Tier.REALTIME, priority=9, gpu_classes=[world.a100]
    )
    job = factories.GenerationJobFactory(
        department=zeta,
        submitter=boss,
        kind=world.lipsync,
        gpu_class=world.a100,
        namespace="ns-secret-zeta",
        idempotency_key="idem-SECRET-4242",
        params={"text": "SECRET-PARAM-TEXT"},
        state="succeeded",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        result_files=["result.txt"],
    )
    folder = settings.MEDIA_ROOT / "jobs" / str(job.pk)
    folder.mkdir(parents=True)
    (folder / "result.txt").write_text("SECRET-RESULT-CONTENT")
    (folder / "job.log").write_text("SECRET-LOG-CONTENT\n")

    ledger = Ledger()
    rate_card = factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2"))
    factories.RateCardFactory(gpu_class=world.t4, price_per_gpu_hour=Decimal("1"))
    ledger.add(at=hour(5, 10), gpu_hours="123.4567", department=zeta, gpu_class=world.a100)
    # Marketing and training have usage too, so what the sweep reads is never just empty.
    ledger.add(at=hour(2, 10), gpu_hours="1.5", department=world.marketing, gpu_class=world.a100)
    ledger.add(at=hour(3, 10), gpu_hours="0.25", department=world.training, gpu_class=world.t4)
    # And this month, for the dashboards' default month and the usage list's default window
    # (two hours ago, but never before the month's first hour: early on the 1st, two hours
    # ago is last month, and these markers would be on no page at all).
    now = timezone.now()
    recent = max(
        month_bounds(now)[0],
        now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2),
    )
    ledger.add(at=recent, gpu_hours="98.7654", department=zeta, gpu_class=world.a100)
    ledger.add(at=recent, gpu_hours="0.5", department=world.marketing, gpu_class=world.t4)

    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=zeta)
    services.statement_finalize(statement=statement, user=world.user("finance"))
    statement.refresh_from_db()
    adjustment = services.adjustment_create(
        original=statement,
        amount=Decimal("-7.77"),
        reason="Zeta SECRET outage credit",
        user=world.user("finance"),
    )
    next_statement = adjustment.applied_to
    markers = {
        "department name": zeta.name,
        "department slug": zeta.slug,
        "cost centre": zeta.cost_centre,
        "namespace": "ns-secret-zeta",
        "manager username": boss.username,
        "manager e-mail": boss.email,
        "quota limit": "4242.42",
        "job id": str(job.pk),
        "job idempotency key": job.idempotency_key,
        "job parameter": "SECRET-PARAM-TEXT",
        "job output": "SECRET-RESULT-CONTENT",
        "job log": "SECRET-LOG-CONTENT",
        # As pages and exports show them (to 0.01 GPU-hour).
        "March GPU-hours": "123.46",
        "this month's GPU-hours": "98.77",
        "statement total": f"{statement.total:.2f}",
        "this month's cost": "197.53",  # 98.7654 h at 2 EUR
        "adjustment reason": adjustment.reason,
    }
    assert statement.total == Decimal("246.91"), statement.total  # 123.4567 h at 2 EUR
    from billing.models import AlertChannel, Delivery

    channel = AlertChannel.objects.create(
        department=zeta,
        name="Zeta SECRET channel",
        kind="email",
        emails=["alerts@secret-zeta.example"],
        created_by=boss,
    )
    delivery = Delivery.objects.create(
        channel=channel,
        event_key="quota:zeta-secret",
        event_type="quota",
        subject="Zeta SECRET alert subject",
        text="Zeta SECRET alert text",
    )
    role_mapping = RoleMapping.objects.create(
        group="zeta-SECRET-leads-group", role="manager", department=zeta
    )
    markers["role mapping group"] = role_mapping.group
    markers["alert channel"] = channel.name
    markers["alert address"] = "alerts@secret-zeta.example"
    markers["alert subject"] = delivery.subject
    token = tokens.api_token_create(user=boss, name="Zeta SECRET token").token
    markers["API token name"] = token.name
    markers["API token prefix"] = token.prefix
    return Secret(
        role_mapping=role_mapping,
        token=token,
        channel=channel,
        delivery=delivery,
        department=zeta,
        boss=boss,
        quota=quota,
        sla=sla,
        job=job,
        statement=statement,
        next_statement=next_statement,
        adjustment=adjustment,
        rate_card=rate_card,
        markers=markers,
    )


# --- Filling parameters ---------------------------------------------------------------------
# What each path parameter of each route is filled with: a Zeta object where the route
# reads department-owned objects, a shared object (GPU class, job kind, off-peak window, rate
# card) where it reads those. Keyed by the route's name (URL configuration) or by the first
# path segment after /api/v1/ (OpenAPI); a route or parameter missing here fails the sweep.


def _route_fillers(s: Secret, world) -> dict:
    statement = lambda: {"pk": s.statement.pk}  # noqa: E731
    return {
        "departments:detail": lambda: {"slug": s.department.slug},
        "departments:alerts": lambda: {"slug": s.department.slug},
        "departments:alert_channel": lambda: {"slug": s.department.slug, "pk": s.channel.pk},
        "jobs:detail": lambda: {"pk": s.job.pk},
        "jobs:cancel": lambda: {"pk": s.job.pk},
        "billing:statement": statement,
        "billing:finalize": statement,
        "departments-detail": lambda: {"slug": s.department.slug},
        "quotas-detail": lambda: {"pk": s.quota.pk},
        "service-levels-detail": lambda: {"pk": s.sla.pk},
        "jobs-detail": lambda: {"pk": s.job.pk},
        "jobs-cancel": lambda: {"pk": s.job.pk},
        "jobs-files": lambda: {"pk": s.job.pk, "name": "result.txt"},
        "statements-detail": statement,
        "statements-pdf": statement,
        "statements-line-jobs": lambda: {"pk": s.statement.pk, "line_pk": _first_line(s)},
        "billing:line_jobs": lambda: {"pk": s.statement.pk, "line_pk": _first_line(s)},
        "statements-finalize": statement,
        "adjustments-detail": lambda: {"pk": s.adjustment.pk},
        "alert-channels-detail": lambda: {"pk": s.channel.pk},
        "alert-deliveries-detail": lambda: {"pk": s.delivery.pk},
        "role-mappings-detail": lambda: {"pk": s.role_mapping.pk},
        "tokens-detail": lambda: {"pk": s.token.pk},
        "tokens-revoke": lambda: {"pk": s.token.pk},
        "accounts:token_revoke": lambda: {"pk": s.token.pk},
        # Shared objects: readable by everyone signed in; their answers must still hold no
        # marker (a rate card listing which departments it priced, say).
        "gpu-classes-detail": lambda: {"slug": world.a100.slug},
        "job-kinds-detail": lambda: {"slug": world.lipsync.slug},
        "off-peak-windows-detail": lambda: {"pk": world.off_peak.pk},
        "rate-cards-detail": lambda: {"pk": s.rate_card.pk},
        "clusters-detail": lambda: {"slug": _shared_cluster().slug},
        "worker-pools-detail": lambda: {"pk": _shared_pool().pk},
    }


def _first_line(s) -> int:
    """The first line of Zeta's statement (999999, a line of nothing, for the stand-in)."""
    if not hasattr(s.statement, "lines"):
        return 999999
    return s.statement.lines.order_by("pk").values_list("pk", flat=True).first()


def _shared_cluster():
    from departments.models import Cluster

    return Cluster.objects.get_or_create(slug="prod-eu", defaults={"name": "Prod EU"})[0]


def _shared_pool():
    from departments.models import WorkerPool

    return WorkerPool.objects.get_or_create(namespace="gpu-workers")[0]


# Route names whose answers are about a Zeta object (so must refuse), not a list/shared one.
SECRET_ROUTES = {
    "departments:detail",
    "departments:alerts",
    "departments:alert_channel",
    "jobs:detail",
    "jobs:cancel",
    "billing:statement",
    "billing:finalize",
    "departments-detail",
    "quotas-detail",
    "service-levels-detail",
    "jobs-detail",
    "jobs-cancel",
    "jobs-files",
    "statements-detail",
    "statements-pdf",
    "statements-finalize",
    "statements-line-jobs",
    "billing:line_jobs",
    "adjustments-detail",
    "role-mappings-detail",
    "tokens-detail",
    "tokens-revoke",
    "accounts:token_revoke",
}

# Secret routes that change something: POSTed to as well, with these forms.
POSTED_ROUTES = {
    "jobs:cancel": None,
    "billing:finalize": None,
    "departments:alerts": {"name": "sweep", "kind": "email", "emails": "sweep@example.com"},
    "departments:alert_channel": {"action": "delete"},
    "accounts:token_revoke": None,
}

FORMATS = ["json", "csv", "xlsx", "pdf", "api"]

# Extra query strings for HTML pages that read their own (not declared in any schema).
PAGE_QUERIES = {
    "home": lambda s: [{"department": s.department.slug}],
    "billing:dashboard": lambda s: [
        {"period": "2026-03"},
        {"period": "2026-04"},
        *({"period": value} for value in HOSTILE_DATES),
    ],
    "billing:statements": lambda s: [
        {"department": s.department.slug},
        {"department": s.department.pk},
        {"period": "2026-03"},
        {"period": "2026-03", "status": "finalized"},
        *({"period": value} for value in HOSTILE_DATES),
    ],
    "jobs:list": lambda s: [
        {"department": s.department.slug},
        {"department": s.department.pk},
        {"state": "succeeded"},
        *({"submitted_after": value} for value in HOSTILE_DATES),
        *({"submitted_before": value} for value in HOSTILE_DATES),
    ],
    "jobs:submit": lambda s: [
        {"department": s.department.slug, "change": "1"},
        {"department": s.department.pk, "change": "1"},
    ],
    "chargeback-report": lambda s: [{"period": "2026-03"}],
}


def _api_path_fillers(s: Secret, world) -> dict:
    return {
        "departments": {"slug": s.department.slug},
        "quotas": {"id": s.quota.pk},
        "service-levels": {"id": s.sla.pk},
        "jobs": {"id": s.job.pk, "name": "result.txt"},
        "statements": {"id": s.statement.pk, "line_pk": _first_line(s)},
        "adjustments": {"id": s.adjustment.pk},
        "gpu-classes": {"slug": world.a100.slug},
        "job-kinds": {"slug": world.lipsync.slug},
        "off-peak-windows": {"id": world.off_peak.pk},
        "rate-cards": {"id": s.rate_card.pk},
        "clusters": {"slug": _shared_cluster().slug},
        "worker-pools": {"id": _shared_pool().pk},
        "alert-channels": {"id": s.channel.pk},
        "alert-deliveries": {"id": s.delivery.pk},
        "role-mappings": {"id": s.role_mapping.pk},
        "tokens": {"id": s.token.pk},
    }


SECRET_COLLECTIONS = {
    "role-mappings",
    "alert-channels",
    "alert-deliveries",
    "departments",
    "quotas",
    "service-levels",
    "jobs",
    "statements",
    "adjustments",
    "tokens",
}


def _secret_filters(s: Secret) -> dict:
    """Query parameters that name a department's object: (secret value, a value naming
    nothing) pairs. The answer to the first must be the answer to the second."""
    department = [(s.department.slug, "no-such-dept"), (str(s.department.pk), "999999")]
    return {
        "department": department,
        "parent": department,
        "cost_centre": [(s.department.cost_centre, "CC-NOPE-000")],
        "namespace": [("ns-secret-zeta", "ns-nope")],
        "name": [(s.department.name, "Nope Lab")],
        "original": [(str(s.statement.pk), "999999")],
        "submitter": [(s.boss.username, "nobody-at-all")],
        # Search words: a secret department's name or a person in it finds nothing.
        "q": [(s.department.name, "Nope Lab"), (s.boss.username, "nobody-at-all")],
    }


# Query parameters that name nothing department-owned: one plain value each (enumerations
# are swept value by value from the schema).
NEUTRAL_PARAMS = {
    "period": "2026-03",
    "start": "2026-03-01",
    "end": "2026-04-01",
    "granularity": "month",
    "gpu_class": "a100",
    "job_kind": "lipsync-render",
    "kind": "lipsync-render",
    "state": "succeeded",
    "active": "true",
    "preemptible": "false",
    "hold_for_off_peak": "false",
    "currency": "EUR",
    "valid_at": "2026-03-15T00:00:00Z",
    "submitted_after": "2020-01-01T00:00:00Z",
    "submitted_before": "2100-01-01T00:00:00Z",
    "source": "allocation",
    "cluster": "prod-eu",
    "flagged": "true",
    "pool": "gpu-workers",
}
IGNORED_PARAMS = {"page", "ordering", "format", "page_size"}
BASE_QUERY = {"page_size": "1000"}
# Hostile values for every date, date-time or month parameter (each answers without a
# server error, and tells nothing of Zeta), and a JSON body nested a thousand deep for
# every write.
DEEP_BODY = b"[" * 1000 + b"]" * 1000


# --- Reading answers ------------------------------------------------------------------------


def _content(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _readable(response) -> str:
    """Everything an answer says, as text: headers that name things, the body decoded by
    its type (XLSX cells, PDF drawn strings as well as the raw bytes)."""
    data = _content(response)
    parts = [response.get("Content-Disposition", ""), response.get("Location", "")]
    content_type = response.get("Content-Type", "")
    if data.startswith(b"PK") and "sheet" in content_type:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        for sheet in book.worksheets:
            parts.append(sheet.title)
            for row in sheet.iter_rows(values_only=True):
                parts.extend("" if v is None else str(v) for v in row)
    elif data.startswith(b"%PDF-"):
        parts.append(data.decode("latin-1"))
        parts.append(pdf_text(data))
    else:
        text = data.decode("utf-8", errors="replace")
        parts.append(text)
        if "json" in content_type:
            # \u-escaped JSON would hide a marker from a plain search.
            with contextlib.suppress(ValueError):
                parts.append(json.dumps(json.loads(text), ensure_ascii=False))
    return "\n".join(parts)


@dataclass
class Sweep:
    role: str
    markers: dict
    leaks: list = field(default_factory=list)
    requests: int = 0

    def check(self, method, url, response, *, secret_object=False, body=None, label=""):
        self.requests += 1
        request_text = unquote(url) + (json.dumps(body, default=str) if body else "")
        what = f"{method.upper()} {url}" + (f" {label}" if label else "")
        status = response.status_code
        if status >= 500:
            self._leak(what, f"answered {status}")
        if secret_object:
            # A token is an API credential: to the pages, its holder is signed out.
            signed_out = self.role == "anonymous" or (
                self.role in TOKEN_ROLES and not url.startswith("/api/")
            )
            if signed_out:
                ok = status in (401, 403, 404, 405) or (
                    status == 302 and response["Location"].split("?")[0] in LOGIN_PATHS
                )
            else:
                ok = status in (403, 404, 405)
            if not ok:
                self._leak(what, f"answered {status} for another department's object")
        text = _readable(response)
        for name, marker in self.markers.items():
            if marker in text and marker not in request_text:
                self._leak(what, f"answer ({status}) shows the {name} {marker!r}")
        return response

    def _leak(self, what, why):
        if (self.role, what) in KNOWN_LEAKS:
            return
        self.leaks.append(f"{what}: {why}")


def _with_query(path: str, query: dict) -> str:
    return f"{path}?{urlencode(query)}" if query else path


# --- The routes of the URL configuration ----------------------------------------------------


def _routes(patterns, namespace=""):
    """(name, parameter names) of every named route outside the admin."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from (
                (name, params | set(pattern.pattern.regex.groupindex))
                for name, params in _routes(pattern.url_patterns, inner)
            )
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield namespace + pattern.name, set(pattern.pattern.regex.groupindex)


def _nothing(world):
    """Stands for Zeta in the fillers, with ids and slugs of nothing that exists."""
    from types import SimpleNamespace as N

    return N(
        department=N(slug="no-such-dept", pk=999999),
        job=N(pk=uuid.uuid4()),
        statement=N(pk=999999),
        quota=N(pk=999999),
        sla=N(pk=999999),
        adjustment=N(pk=999999),
        rate_card=N(pk=999999),
        channel=N(pk=999999),
        delivery=N(pk=999999),
        role_mapping=N(pk=999999),
        token=N(pk=999999),
    )


def _route_urls(s: Secret, world) -> tuple[list, list]:
    """(route name, secret?, url) for every route, and the routes that cannot be filled."""
    fillers = _route_fillers(s, world)
    urls, unfilled = [], []
    for name, params in sorted(
        set((n, frozenset(p)) for n, p in _routes(get_resolver().url_patterns))
    ):
        kwargs = fillers[name]() if name in fillers else {}
        missing = set(params) - set(kwargs) - {"format"}
        if missing:
            unfilled.append(f"{name} ({', '.join(sorted(missing))})")
            continue
        if "format" in params:
            for suffix in FORMATS:
                urls.append(
                    (
                        name,
                        name in SECRET_ROUTES,
                        reverse(name, kwargs={**kwargs, "format": suffix}),
                    )
                )
            continue
        path = reverse(name, kwargs={k: v for k, v in kwargs.items() if k in params})
        urls.append((name, name in SECRET_ROUTES, path))
        for query in PAGE_QUERIES.get(name, lambda s: [])(s):
            urls.append((name, name in SECRET_ROUTES, _with_query(path, query)))
    return urls, unfilled


# --- The operations of the OpenAPI schema ---------------------------------------------------


@dataclass
class Probe:
    method: str
    url: str
    secret_object: bool
    body: dict | bytes | None = None  # bytes: sent as they are, as JSON
    twin: str | None = None  # the same request naming nothing that exists
    label: str = ""


PATCH_BODY = {
    "name": "Hacked",
    "cost_centre": "CC-HACKED",
    "limit": "1",
    "priority": 1,
    "amount": "1000",
    "reason": "hacked",
    "total": "0",
    "namespaces": ["ns-hacked"],
    "max_runtime_s": 1,
}


def _create_body(collection: str, s: Secret) -> dict:
    """A creation that names Zeta: refused (400 like an unknown name, or 403)."""
    department = s.department.slug
    return {
        "jobs": {"department": department, "kind": "lipsync-render", "tier": "batch"},
        "quotas": {
            "department": department,
            "kind": "concurrent_jobs",
            "limit": "3",
            "enforcement": "hard_queue",
        },
        "service-levels": {
            "department": department,
            "tier": "batch",
            "priority": 1,
            "gpu_classes": ["a100"],
        },
        "adjustments": {"original": s.statement.pk, "amount": "500.00", "reason": "Sweep"},
        "departments": {
            "name": "Zeta Child",
            "slug": "zeta-child",
            "cost_centre": "CC-0",
            "parent": department,
            "namespaces": ["ns-secret-zeta"],
        },
        "statements": {"department": department},
        "auth": {"username": s.boss.username, "password": "wrong"},
    }.get(collection, {"department": department})


def _schema_probes(s: Secret, world) -> tuple[list, list, int]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    path_fillers = _api_path_fillers(s, world)
    secret_filters = _secret_filters(s)
    probes, unfilled, operations = [], [], 0
    for template, operations_of_path in schema["paths"].items():
        collection = template.removeprefix("/api/v1/").split("/")[0]
        for method, operation in operations_of_path.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            operations += 1
            op_id = operation["operationId"]
            params = operation.get("parameters", [])
            path_params = [p["name"] for p in params if p["in"] == "path"]
            fill = path_fillers.get(collection, {})
            missing = [p for p in path_params if p not in fill]
            if missing:
                unfilled.append(f"{op_id} ({', '.join(missing)})")
                continue
            path = template
            for name in path_params:
                path = path.replace("{" + name + "}", str(fill[name]))
            is_secret = bool(path_params) and collection in SECRET_COLLECTIONS
            formats = next(
                (p["schema"].get("enum", []) for p in params if p["name"] == "format"), []
            )
            if method != "get":
                body = (
                    None
                    if method == "delete"
                    else (PATCH_BODY if path_params and method in ("put", "patch") else None)
                )
                if not path_params:
                    body = _create_body(collection, s)
                probes.append(Probe(method, path, is_secret, body, label=op_id))
                if method != "delete":
                    probes.append(Probe(method, path, is_secret, DEEP_BODY, label=op_id))
                continue
            probes.append(Probe("get", path, is_secret, label=op_id))
            for fmt in formats:
                probes.append(
                    Probe("get", _with_query(path, {"format": fmt}), is_secret, label=op_id)
                )
            if path_params:
                continue
            base = dict(BASE_QUERY)
            base.update(
                {
                    p["name"]: NEUTRAL_PARAMS[p["name"]]
                    for p in params
                    if p["name"] in ("period", "start", "end")
                }
            )
            probes.append(Probe("get", _with_query(path, base), False, label=op_id))
            for fmt in formats:
                probes.append(
                    Probe("get", _with_query(path, {**base, "format": fmt}), False, label=op_id)
                )
            for param in params:
                name = param["name"]
                if param["in"] != "query" or name in IGNORED_PARAMS:
                    continue
                if name in DATE_NAMES or param.get("schema", {}).get("format") in (
                    "date",
                    "date-time",
                ):
                    for value in HOSTILE_DATES:
                        query = {**base, name: value}
                        probes.append(Probe("get", _with_query(path, query), False, label=op_id))
                if name in secret_filters:
                    for value, nothing in secret_filters[name]:
                        for extra in ({}, {"format": "csv"} if "csv" in formats else None):
                            if extra is None:
                                continue
                            probes.append(
                                Probe(
                                    "get",
                                    _with_query(path, {**base, **extra, name: value}),
                                    False,
                                    twin=_with_query(path, {**base, **extra, name: nothing}),
                                    label=op_id,
                                )
                            )
                elif param.get("schema", {}).get("enum"):
                    for value in param["schema"]["enum"]:
                        probes.append(
                            Probe(
                                "get", _with_query(path, {**base, name: value}), False, label=op_id
                            )
                        )
                elif name in NEUTRAL_PARAMS:
                    query = {**base, name: NEUTRAL_PARAMS[name]}
                    probes.append(Probe("get", _with_query(path, query), False, label=op_id))
                else:
                    unfilled.append(f"{op_id} (query parameter {name})")
    return probes, unfilled, operations


# --- What must not change -------------------------------------------------------------------


def _snapshot(s: Secret) -> dict:
    zeta = s.department.pk
    return {
        "department": list(Department.objects.filter(pk=zeta).values()),
        "namespaces": sorted(
            Namespace.objects.filter(department=zeta).values_list("name", flat=True)
        ),
        "memberships": list(Membership.objects.filter(department=zeta).values().order_by("pk")),
        "quotas": list(Quota.objects.filter(department=zeta).values().order_by("pk")),
        "slas": list(ServiceLevel.objects.filter(department=zeta).values().order_by("pk")),
        "jobs": list(
            GenerationJob.objects.filter(department=zeta)
            .values("pk", "state", "reason", "params", "idempotency_key")
            .order_by("pk")
        ),
        # Reading a dashboard may open this month's draft (drafts follow the ledger); the
        # statements the fixture made must stay as they are.
        "statements": list(
            Statement.objects.filter(pk__in=[s.statement.pk, s.next_statement.pk])
            .values("pk", "status", "total", "finalized_at", "computed_at")
            .order_by("pk")
        ),
        "adjustments": list(
            Adjustment.objects.filter(original__department=zeta).values().order_by("pk")
        ),
        "usage": UsageRecord.objects.filter(department=zeta).count(),
        "API tokens": list(ApiToken.objects.filter(user=s.boss).values().order_by("pk")),
        "departments": Department.objects.count(),
    }


# --- The tests ------------------------------------------------------------------------------


def _request(client, probe_method, url, body=None):
    if isinstance(body, bytes):
        return client.generic(probe_method.upper(), url, body, content_type="application/json")
    return (
        getattr(client, probe_method)(url, body, format="json")
        if body is not None
        else getattr(client, probe_method)(url)
    )


def _client_for(role: str, world, api_client, request):
    """``api_client`` as ``role``: signed in directly, or through the identity provider
    (mapped by its groups to marketing's member or manager), or holding the provider's
    access token for marketing's manager."""
    if not role.startswith("provider_"):
        return client_as(api_client, world, role)
    provider = request.getfixturevalue("oidc")
    username = provider_person(
        provider,
        world.marketing,
        f"sso-{role.removeprefix('provider_').replace('_', '-')}",
        "member" if role == "provider_member" else "manager",
    )
    if role == "provider_token_manager":
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {provider.access_token(username)}")
    else:
        assert sign_in(api_client, provider, username)["Location"] == "/"
    return api_client


@pytest.mark.parametrize("role", SWEPT_ROLES)
def test_nothing_of_another_department_leaks(world, secret, api_client, role, request):
    client = _client_for(role, world, api_client, request)
    client.raise_request_exception = False  # a 500 is an answer to report, not a crash
    sweep = Sweep(role=role, markers=secret.markers)
    before = _snapshot(secret)

    routes, unfilled_routes = _route_urls(secret, world)
    probes, unfilled_operations, operations = _schema_probes(secret, world)
    assert not unfilled_routes and not unfilled_operations, (
        "the sweep cannot fill these parameters; add them to the tables of "
        f"tests/portal/test_access_sweep.py: {unfilled_routes + unfilled_operations}"
    )

    nothing_urls = dict(
        zip(
            [r[2] for r in routes],
            [r[2] for r in _route_urls(_nothing(world), world)[0]],
            strict=True,
        )
    )
    for name, is_secret, url in routes:
        response = client.get(url)
        if is_secret:
            # Zeta's object and nothing at all answer alike: no existence oracle.
            twin = client.get(nothing_urls[url])
            sweep.requests += 1
            if twin.status_code != response.status_code:
                sweep._leak(
                    f"GET {url} [{name}]",
                    f"answered {response.status_code} where naming nothing answers "
                    f"{twin.status_code}",
                )
            elif response.status_code == 500 and name in KNOWN_SERVER_ERRORS:
                sweep.requests += 1
                continue
        sweep.check("get", url, response, secret_object=is_secret, label=f"[{name}]")
        if is_secret and name in POSTED_ROUTES:
            form = POSTED_ROUTES[name]
            answer = client.post(url, form) if form else client.post(url)
            sweep.check("post", url, answer, secret_object=True, label=f"[{name}]")

    for probe in probes:
        response = _request(client, probe.method, probe.url, probe.body)
        # A creation naming Zeta: refused, never created.
        creation = probe.method != "get" and not probe.secret_object
        if creation and not 300 <= response.status_code < 500:
            sweep._leak(
                f"{probe.method.upper()} {probe.url} [{probe.label}]",
                f"answered {response.status_code} to a request naming another department",
            )
        sweep.check(
            probe.method,
            probe.url,
            response,
            secret_object=probe.secret_object,
            body=None if isinstance(probe.body, bytes) else probe.body,
            label=f"[{probe.label}]",
        )
        if probe.twin:
            twin = client.get(probe.twin)
            sweep.requests += 1
            if twin.status_code != response.status_code:
                sweep._leak(
                    f"GET {probe.url} [{probe.label}]",
                    f"answered {response.status_code} where naming nothing answers "
                    f"{twin.status_code}: it tells that the object exists",
                )
            elif response.status_code == 400:
                secret_value = probe.url.rsplit("=", 1)[-1]
                nothing = probe.twin.rsplit("=", 1)[-1]
                said = _content(response).decode().replace(unquote(secret_value), "·")
                said_for_nothing = _content(twin).decode().replace(unquote(nothing), "·")
                if said != said_for_nothing:
                    sweep._leak(
                        f"GET {probe.url} [{probe.label}]",
                        f"refused in other words than a name of nothing: {said[:200]}",
                    )

    # The token endpoint tells a wrong password of Zeta's manager from an unknown user?
    wrong = api_client.post(
        "/api/v1/auth/token/", {"username": secret.boss.username, "password": "x"}
    )
    unknown = api_client.post("/api/v1/auth/token/", {"username": "nobody-at-all", "password": "x"})
    sweep.requests += 2
    if (wrong.status_code, wrong.content) != (unknown.status_code, unknown.content):
        sweep._leak("POST /api/v1/auth/token/", "answers differently for an existing user")

    after = _snapshot(secret)
    changed = [key for key in before if before[key] != after[key]]
    print(
        f"\n{role}: {len({r[0] for r in routes})} routes ({len(routes)} URLs), "
        f"{operations} operations ({len(probes)} probes), {sweep.requests} requests"
    )
    assert not changed, f"{role}'s requests changed Zeta's {changed}: " + "; ".join(
        f"{before[key]} -> {after[key]}" for key in changed
    )
    assert not sweep.leaks, f"{len(sweep.leaks)} leaks to {role}:\n" + "\n".join(sweep.leaks)


@pytest.mark.parametrize("role", CONTROL_ROLES)
def test_finance_and_it_do_read_the_markers(world, secret, api_client, role):
    """The control: the markers are real, and the sweep's reading finds them (JSON, CSV,
    XLSX, PDF, HTML), so their absence above means something."""
    client = client_as(api_client, world, role)
    s = secret
    expected = {
        f"/api/v1/departments/{s.department.slug}/": [
            "department name",
            "cost centre",
            "namespace",
        ],
        "/api/v1/departments/?format=csv": ["department name", "cost centre"],
        f"/api/v1/jobs/{s.job.pk}/": ["job idempotency key", "job parameter", "manager username"],
        f"/api/v1/jobs/{s.job.pk}/files/result.txt/": ["job output"],
        f"/api/v1/quotas/{s.quota.pk}/": ["quota limit"],
        f"/api/v1/statements/{s.statement.pk}/": ["statement total", "department slug"],
        f"/api/v1/statements/{s.statement.pk}/?format=xlsx": ["March GPU-hours"],
        f"/api/v1/statements/{s.statement.pk}/pdf/": ["department name", "statement total"],
        f"/api/v1/adjustments/{s.adjustment.pk}/": ["adjustment reason"],
        f"/api/v1/role-mappings/{s.role_mapping.pk}/": ["role mapping group", "department slug"],
        "/api/v1/reports/chargeback/?period=2026-03&format=xlsx": ["department name"],
        "/api/v1/usage/?format=csv&start=2026-03-01&end=2026-04-01": ["department slug"],
        f"/departments/{s.department.slug}/": ["department name"],
        f"/departments/{s.department.slug}/alerts/": [
            "department name",
            "alert channel",
            "alert address",
            "alert subject",
        ],
        f"/jobs/{s.job.pk}/": ["job parameter", "department name"],
        "/billing/?period=2026-03": ["department name"],
        f"/billing/statements/{s.statement.pk}/": ["statement total", "adjustment reason"],
    }
    missing = []
    for url, names in expected.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        text = _readable(response)
        missing += [f"{url}: {n}" for n in names if s.markers[n] not in text]
    assert not missing, f"{role} should read these markers: {missing}"
