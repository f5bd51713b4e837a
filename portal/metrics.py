"""The portal's own metrics, served by the web process on ``GET /metrics`` for Prometheus.

Two kinds of figures:

- **From the database, at scrape time** (:class:`PortalCollector`): each department's
  month-to-date spend, its GPU-hour budgets and their use, its open jobs, and how far
  behind each metering source is. Every gunicorn worker computes them the same way from
  the same rows, so whichever worker answers a scrape, the figures are the same. Each
  family costs a fixed number of queries, however many departments there are.
- **Per request** (:class:`RequestDurationMiddleware`): the histogram
  ``portal_http_request_duration_seconds{method,view,status}``. Each worker process
  observes its own requests; under gunicorn (``portal/gunicorn.conf.py``) they write them
  to files under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) and
  a scrape answers their sum. Without that directory (``runserver``, the tests' client) the
  process keeps the histogram in memory.

``prometheus_client`` is imported lazily, as in :mod:`jobs.metrics`: whether it writes
values to files is decided when the library is first imported, which in a web worker must
happen after gunicorn's configuration set the directory, and in a Celery worker (which
may import this module through the URL configuration) after :mod:`jobs.metrics` set its
own.
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from billing.models import Statement
from cluster import selectors as cluster_selectors
from core import calendar
from departments.models import Department, Quota, QuotaKind, ServiceLevel
from jobs import selectors as job_selectors
from jobs.models import GenerationJob, JobState
from metering import selectors as metering_selectors

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.metrics_core import Metric

# --- Figures from the database ----------------------------------------------------------------

OPEN_JOB_STATES = (JobState.QUEUED, JobState.WAITING, JobState.RUNNING)


def department_spend(now: dt.datetime) -> Iterator[Metric]:
    """``portal_department_spend_month_to_date{department,currency}``: the total of each
    department's statement of the month, as the department page shows it (the draft as
    last priced: by the every-5-minutes task, or by any page that found its inputs
    changed; a scrape reads it and never prices anything itself). An active department
    with no statement yet has spent 0. One query."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "portal_department_spend_month_to_date",
        "The department's statement total for the month so far (the draft as last priced).",
        labels=["department", "currency"],
    )
    statement = Statement.objects.filter(
        department=OuterRef("pk"), period__month=calendar.month_of(now)
    )
    rows = (
        Department.objects.annotate(
            total=Subquery(statement.values("total")[:1]),
            currency=Subquery(statement.values("currency")[:1]),
        )
        .filter(Q(active=True) | Q(total__isnull=False))
        .order_by("slug")
        .values_list("slug", "total", "currency")
    )
    for slug, total, currency in rows:
        family.add_metric([slug, currency or settings.BILLING_CURRENCY], float(total or 0))
    yield family


def budget_use(now: dt.datetime) -> Iterator[Metric]:
    """``portal_budget_{limit,used}_gpu_hours`` and ``portal_budget_used_ratio``
    ``{department,scope}`` for each monthly GPU-hours quota of every job kind (scope
    ``all``, or the slug of the GPU class it is narrowed to) of the active departments,
    its use counted as admission counts it (:func:`jobs.selectors.quota_uses`). Two
    queries (four where the billing source is the workers' own counter)."""
    from prometheus_client.core import GaugeMetricFamily

    labels = ["department", "scope"]
    limit = GaugeMetricFamily(
        "portal_budget_limit_gpu_hours",
        "The monthly GPU-hours budget (a gpu_hours_month quota of every job kind).",
        labels=labels,
    )
    used = GaugeMetricFamily(
        "portal_budget_used_gpu_hours",
        "What counts against the budget now, as admission counts it: metered GPU-hours, "
        "reservations of queued and running jobs, finished jobs not metered yet.",
        labels=labels,
    )
    ratio = GaugeMetricFamily(
        "portal_budget_used_ratio", "Budget used over its limit (1 is all of it).", labels=labels
    )
    quotas = list(
        Quota.objects.filter(
            kind=QuotaKind.GPU_HOURS_MONTH, job_kind="", department__active=True
        ).select_related("department", "gpu_class")
    )
    uses = job_selectors.quota_uses_of_departments(quotas, at=now)
    for quota in sorted(quotas, key=lambda q: (q.department.slug, _scope(q))):
        values = [quota.department.slug, _scope(quota)]
        limit.add_metric(values, float(quota.limit))
        used.add_metric(values, float(uses[quota.pk]))
        ratio.add_metric(values, float(uses[quota.pk] / quota.limit))
    yield from (limit, used, ratio)


def _scope(quota: Quota) -> str:
    return quota.gpu_class.slug if quota.gpu_class else "all"


def open_jobs(now: dt.datetime) -> Iterator[Metric]:
    """``portal_jobs{department,tier,state}``: jobs queued, waiting and running, with a 0
    for each of these states of every tier an active department has a service level for
    (so a series does not vanish when its last job leaves it). Two queries."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "portal_jobs",
        "Jobs queued, waiting or running now.",
        labels=["department", "tier", "state"],
    )
    counts: dict[tuple[str, str, str], int] = {}
    for slug, tier in ServiceLevel.objects.filter(department__active=True).values_list(
        "department__slug", "tier"
    ):
        counts.update({(slug, tier, state): 0 for state in OPEN_JOB_STATES})
    rows = (
        GenerationJob.objects.filter(state__in=OPEN_JOB_STATES)
        .order_by()
        .values_list("department__slug", "tier", "state")
        .annotate(n=Count("pk"))
    )
    for slug, tier, state, n in rows:
        # A department without a service level for a tier has no zeros for it: fill the
        # other states of that tier too.
        for other in OPEN_JOB_STATES:
            counts.setdefault((slug, tier, other), 0)
        counts[slug, tier, state] = n
    for key in sorted(counts):
        family.add_metric(list(key), counts[key])
    yield family


def metering_lag(now: dt.datetime) -> Iterator[Metric]:
    """``portal_metering_lag_seconds{source}``: for each enabled source, now less the end
    of the latest hour its successful runs covered (``+Inf`` while none has covered an
    hour). One query."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "portal_metering_lag_seconds",
        "Seconds since the end of the latest hour the source's successful runs covered.",
        labels=["source"],
    )
    for name, covered_until in metering_selectors.covered_until_by_source().items():
        lag = float("inf") if covered_until is None else (now - covered_until).total_seconds()
        family.add_metric([name], lag)
    yield family


def cluster_drifts(now: dt.datetime) -> Iterator[Metric]:
    """``portal_cluster_drifts{cluster}``: the open drift findings of each cluster (what
    its Prometheus says it holds against what the portal rendered), 0 where none. Two
    queries."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "portal_cluster_drifts",
        "Open drift findings: objects of the cluster missing or not as the portal rendered them.",
        labels=["cluster"],
    )
    for cluster, n in sorted(cluster_selectors.open_drift_count().items()):
        family.add_metric([cluster], n)
    yield family


# Every family a scrape reads from the database, in the order they are served: a new one is
# one more function here, taking the scrape's ``now`` and yielding metric families, in a
# bounded number of queries.
DATABASE_FAMILIES: tuple[Callable[[dt.datetime], Iterable[Metric]], ...] = (
    department_spend,
    budget_use,
    open_jobs,
    metering_lag,
    cluster_drifts,
)


class PortalCollector:
    """The figures of :data:`DATABASE_FAMILIES`, computed at each scrape (one ``now`` for
    all of them)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        for family in DATABASE_FAMILIES:
            yield from family(now)


# --- Request durations ------------------------------------------------------------------------

REQUEST_DURATION = "portal_http_request_duration_seconds"
UNMATCHED = "unmatched"  # the view label of a request no URL pattern resolved (a 404)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_histogram: Histogram | None = None


def _multiprocess() -> bool:
    """Whether this process's prometheus-client writes values to files (decided once,
    when the library was first imported)."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def request_duration_histogram() -> Histogram:
    global _histogram
    if _histogram is None:
        from prometheus_client import Histogram

        _histogram = Histogram(
            REQUEST_DURATION,
            "Time the portal took to answer a request, by method, view (the URL pattern's "
            "name; 'unmatched' when none matched) and status.",
            ["method", "view", "status"],
            registry=None,  # served by :func:`registry`, from files or from this process
        )
    return _histogram


def request_observe(*, method: str, view: str, status: int, seconds: float) -> None:
    request_duration_histogram().labels(
        method=method if method in _METHODS else "other", view=view, status=str(status)
    ).observe(seconds)


class RequestDurationMiddleware:
    """Observes each request's duration in ``portal_http_request_duration_seconds``,
    labelled with the resolved URL name, never the path (bounded cardinality). The time
    runs from this middleware (after WhiteNoise's static files) to the response; a
    streamed download's body is not timed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        request_observe(
            method=request.method or "",
            view=match.view_name if match is not None else UNMATCHED,
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response


# --- The endpoint -----------------------------------------------------------------------------

_registry: CollectorRegistry | None = None


def registry() -> CollectorRegistry:
    """This process's registry for ``/metrics``: the database figures and the request
    histogram (every worker's, from the multiprocess directory, under gunicorn)."""
    global _registry
    if _registry is None:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        served = CollectorRegistry()
        served.register(PortalCollector())
        if _multiprocess():
            MultiProcessCollector(served)
        else:
            served.register(request_duration_histogram())
        _registry = served
    return _registry


def _authorized(request: HttpRequest) -> bool:
    """With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` (compared in
    constant time); without it, everyone."""
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus' text format (OpenMetrics for a scraper that asks).
    ``401`` without the bearer token when ``METRICS_TOKEN`` is set; ``503`` when the
    database does not answer."""
    if not _authorized(request):
        response = HttpResponse(
            "401 Unauthorized: send Authorization: Bearer <METRICS_TOKEN>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="portal metrics"'
        return response
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(registry())
    except DatabaseError:
        return HttpResponse(
            "503 Service Unavailable: the database does not answer.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(body, content_type=content_type)


class ScrapeMiddleware:
    """Answers ``GET /metrics`` ahead of every other middleware. Prometheus scrapes a pod
    at its address (``Host: 10.1.2.3:8000``), which is in no ``ALLOWED_HOSTS``, over plain
    HTTP: Django's host check and HTTPS redirect would refuse every scrape. The answer
    builds no URL from the host, so skipping the check costs nothing; the bearer token
    (``METRICS_TOKEN``) still applies."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != "/metrics":
            return self.get_response(request)
        started = time.perf_counter()
        response = metrics_view(request)
        request_observe(
            method=request.method or "",
            view="metrics",
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )
        return response
