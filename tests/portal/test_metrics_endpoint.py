"""``GET /metrics``: the portal's own figures for Prometheus, read from the database at
scrape time, and the request-duration histogram, in Prometheus' text format.

The figures are checked against answers worked out by hand for seeded data, and against
what the department page and admission read, so that the same number is never computed
twice in two ways. (Several gunicorn workers answering the same figures and summing
their histograms: tests/integration/test_metrics_under_gunicorn.py.)
"""

import datetime as dt
import math
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing import services as billing_services
from billing.models import Statement
from core.calendar import floor_hour, month_bounds, month_of
from core.roles import FINANCE
from departments.models import QuotaKind, Tier
from jobs import selectors as job_selectors
from metering.models import MeteringRun
from tests import factories
from tests.billing.conftest import Ledger

HOUR = dt.timedelta(hours=1)


def scrape(client, **headers) -> dict:
    """The samples of ``/metrics`` by (name, labels as a sorted tuple of pairs)."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: dict, name: str) -> list[dict]:
    return [dict(labels) for (n, labels) in samples if n == name]


def recent_hour(now: dt.datetime) -> dt.datetime:
    """An hour of this month that has begun (two hours ago, or the month's first)."""
    return max(month_bounds(now)[0], floor_hour(now) - 2 * HOUR)


# --- Seeded data and its answers -------------------------------------------------------------


@pytest.fixture
def seeded(db):
    """Marketing: 12.5 metered GPU-hours of A100 this month at 2.00 EUR (a 25.00 EUR draft),
    a 100 GPU-hour budget and a 10 GPU-hour budget on T4, a queued A100 job reserving 2
    GPU-hours, a running T4 job reserving 0.5, a job finished this month after 0.5
    GPU-hours, and one waiting. Training: a realtime service level, nothing else."""
    now = timezone.now()
    a100 = factories.GpuClassFactory(slug="a100", name="A100")
    t4 = factories.GpuClassFactory(slug="t4", name="T4")
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    training = factories.DepartmentFactory(slug="training", name="Training")
    factories.DepartmentFactory(slug="closed", name="Closed", active=False)
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    ledger = Ledger()
    ledger.add(at=recent_hour(now), gpu_hours="12.5", department=marketing, gpu_class=a100)

    budget = factories.QuotaFactory(
        department=marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("100")
    )
    t4_budget = factories.QuotaFactory(
        department=marketing, kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("10"), gpu_class=t4
    )
    # Neither is a budget of every job kind: not on /metrics.
    factories.QuotaFactory(
        department=marketing,
        kind=QuotaKind.GPU_HOURS_MONTH,
        limit=Decimal("5"),
        job_kind="lipsync-render",
    )
    factories.QuotaFactory(department=marketing, kind=QuotaKind.JOBS_DAY, limit=Decimal("50"))

    factories.ServiceLevelFactory(department=marketing, tier=Tier.BATCH, gpu_classes=[a100, t4])
    factories.ServiceLevelFactory(department=marketing, tier=Tier.INTERACTIVE, gpu_classes=[t4])
    factories.ServiceLevelFactory(department=training, tier=Tier.REALTIME, gpu_classes=[a100])
    job = factories.GenerationJobFactory
    job(department=marketing, tier=Tier.BATCH, gpu_class=a100, gpus=2, max_runtime_s=3600,
        state="queued", gpu_hours_reserved=Decimal("2"), admitted_at=now)  # fmt: skip
    job(department=marketing, tier=Tier.BATCH, gpu_class=t4, gpus=1, max_runtime_s=1800,
        state="running", gpu_hours_reserved=Decimal("0.5"), admitted_at=now)  # fmt: skip
    job(department=marketing, tier=Tier.INTERACTIVE, gpu_class=t4, state="waiting")
    job(department=marketing, tier=Tier.BATCH, gpu_class=a100, state="succeeded",
        admitted_at=now - HOUR, started_at=now - HOUR, finished_at=now - HOUR / 2,
        gpu_seconds=Decimal("1800"))  # fmt: skip
    # A realtime job of marketing, which has no realtime service level (any more).
    job(department=marketing, tier=Tier.REALTIME, gpu_class=a100, state="queued")

    billing_services.period_refresh(month=month_of(now))
    return {
        "marketing": marketing,
        "training": training,
        "budget": budget,
        "t4_budget": t4_budget,
        "ledger": ledger,
    }


def test_spend_is_the_months_draft_total_as_the_department_page_shows_it(seeded, client):
    samples = scrape(client)
    spend = "portal_department_spend_month_to_date"
    assert value(samples, spend, department="marketing", currency="EUR") == 25.0  # 12.5 h × 2
    assert value(samples, spend, department="training", currency="EUR") == 0.0
    # An inactive department with nothing this month is not a series.
    assert {s["department"] for s in series(samples, spend)} == {"marketing", "training"}

    finance = factories.UserFactory()
    finance.groups.add(Group.objects.get(name=FINANCE))
    client.force_login(finance)
    page = client.get("/departments/marketing/")
    assert page.context["spend"]["current"].total == Decimal("25.00")


def test_spend_follows_the_draft_once_it_is_priced_again(seeded, client):
    now = timezone.now()
    seeded["ledger"].add(
        at=recent_hour(now),
        gpu_hours="1",
        department=seeded["marketing"],
        gpu_class=factories.GpuClassFactory(slug="a100"),
        namespace="dept-marketing-2",
    )
    billing_services.period_refresh(month=month_of(now))
    draft = Statement.objects.get(department=seeded["marketing"], period__month=month_of(now))
    assert draft.total == Decimal("27.00")
    samples = scrape(client)
    assert (
        value(
            samples, "portal_department_spend_month_to_date", department="marketing", currency="EUR"
        )
        == 27.0
    )


def test_budgets_are_counted_as_admission_counts_them(seeded, client):
    samples = scrape(client)
    # 12.5 metered + 2 reserved (queued) + 0.5 reserved (running) + 0.5 finished, unmetered.
    assert (
        value(samples, "portal_budget_limit_gpu_hours", department="marketing", scope="all") == 100
    )
    assert (
        value(samples, "portal_budget_used_gpu_hours", department="marketing", scope="all") == 15.5
    )
    assert value(samples, "portal_budget_used_ratio", department="marketing", scope="all") == 0.155
    # On T4: the running job's 0.5.
    assert value(samples, "portal_budget_limit_gpu_hours", department="marketing", scope="t4") == 10
    assert value(samples, "portal_budget_used_gpu_hours", department="marketing", scope="t4") == 0.5
    assert value(samples, "portal_budget_used_ratio", department="marketing", scope="t4") == 0.05
    # Only budgets of every job kind: not the lip-sync one, not the daily jobs quota.
    assert len(series(samples, "portal_budget_limit_gpu_hours")) == 2
    # The same figures admission reads.
    uses = job_selectors.quota_uses([seeded["budget"], seeded["t4_budget"]], at=timezone.now())
    assert uses[seeded["budget"].pk] == Decimal("15.5")
    assert uses[seeded["t4_budget"].pk] == Decimal("0.5")


@pytest.mark.parametrize("billing_counts_jobs", [False, True])
def test_budget_use_of_many_departments_is_what_each_departments_admission_reads(
    seeded, billing_counts_jobs
):
    now = timezone.now()
    month_start = month_bounds(now)[0]
    if billing_counts_jobs:
        # The billing source reads the workers' counter and has covered the month so far:
        # admission reads again, counting only the jobs that ended after the covered hours.
        source = seeded["ledger"].source
        source.query_template = "sum(increase(portal_job_gpu_seconds_total[1h]))"
        source.save()
        factories.MeteringRunFactory(
            source=source, window_start=month_start, window_end=floor_hour(now),
            started_at=floor_hour(now),
        )  # fmt: skip
    other = factories.QuotaFactory(
        department=seeded["training"], kind=QuotaKind.GPU_HOURS_MONTH, limit=Decimal("3")
    )
    factories.GenerationJobFactory(
        department=seeded["training"], state="running", gpu_hours_reserved=Decimal("1.25")
    )
    factories.GenerationJobFactory(
        department=seeded["training"], state="succeeded", admitted_at=month_start,
        finished_at=month_start + dt.timedelta(minutes=1), gpu_seconds=Decimal("900"),
    )  # fmt: skip
    quotas = [seeded["budget"], seeded["t4_budget"], other]
    together = job_selectors.quota_uses_of_departments(quotas, at=now)
    one_by_one = {
        **job_selectors.quota_uses([seeded["budget"], seeded["t4_budget"]], at=now),
        **job_selectors.quota_uses([other], at=now),
    }
    assert together == one_by_one
    # The running job's reservation, and the finished one's 0.25 unless the billing source
    # has metered it (it ended in the month's first hour, covered when it is over).
    metered = billing_counts_jobs and floor_hour(now) - HOUR > month_start
    assert together[other.pk] == Decimal("1.25") + (0 if metered else Decimal("0.25"))


def test_open_jobs_by_department_tier_and_state_with_zeros_for_each_tier(seeded, client):
    samples = scrape(client)
    jobs = {
        (s["department"], s["tier"], s["state"]): value(samples, "portal_jobs", **s)
        for s in series(samples, "portal_jobs")
    }
    assert jobs == {
        ("marketing", "batch", "queued"): 1,
        ("marketing", "batch", "running"): 1,
        ("marketing", "batch", "waiting"): 0,
        ("marketing", "interactive", "queued"): 0,
        ("marketing", "interactive", "running"): 0,
        ("marketing", "interactive", "waiting"): 1,
        # No service level, but a job: its tier is there, zeros and all.
        ("marketing", "realtime", "queued"): 1,
        ("marketing", "realtime", "running"): 0,
        ("marketing", "realtime", "waiting"): 0,
        ("training", "realtime", "queued"): 0,
        ("training", "realtime", "running"): 0,
        ("training", "realtime", "waiting"): 0,
    }


def test_metering_lag_is_now_less_the_end_of_the_last_covered_hour(db, client):
    start = floor_hour(timezone.now()) - 10 * HOUR
    source = factories.MetricSourceFactory(name="lagging")
    # Covers [start, start + 2 h): its window runs to start + 3 h, but it began within the
    # third hour, which was not over yet.
    factories.MeteringRunFactory(
        source=source, window_start=start, window_end=start + 3 * HOUR,
        started_at=start + 2.5 * HOUR,
    )  # fmt: skip
    # Later, but failed, or begun inside its own window: they cover nothing.
    factories.MeteringRunFactory(
        source=source, window_start=start, window_end=start + 6 * HOUR,
        started_at=start + 6 * HOUR, status=MeteringRun.Status.FAILED,
    )  # fmt: skip
    factories.MeteringRunFactory(
        source=source, window_start=start + 5 * HOUR, window_end=start + 6 * HOUR,
        started_at=start + 5.5 * HOUR,
    )  # fmt: skip
    factories.MetricSourceFactory(name="never-ran")
    factories.MetricSourceFactory(name="switched-off", enabled=False)

    before = timezone.now()
    samples = scrape(client)
    after = timezone.now()
    lag = value(samples, "portal_metering_lag_seconds", source="lagging")
    covered_until = start + 2 * HOUR
    assert (
        (before - covered_until).total_seconds() <= lag <= (after - covered_until).total_seconds()
    )
    assert value(samples, "portal_metering_lag_seconds", source="never-ran") == math.inf
    assert value(samples, "portal_metering_lag_seconds", source="switched-off") is None


# --- Labels ----------------------------------------------------------------------------------


def test_departments_are_labelled_by_slug_never_by_name(db, client):
    factories.DepartmentFactory(slug="quote-lab", name='The "Quote"\\ Lab\nof\tnewlines')
    response = client.get("/metrics")
    text = response.content.decode()
    assert "Quote" not in text and "Lab\\n" not in text
    samples = scrape(client)
    assert (
        value(
            samples, "portal_department_spend_month_to_date", department="quote-lab", currency="EUR"
        )
        == 0.0
    )


# --- Who may read it -------------------------------------------------------------------------


def test_without_a_token_set_anyone_reads_it(db, client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Bearer s3cret-token-but-longer", 401),
        ("Token s3cret-token", 401),
        ("s3cret-token", 401),
        ("Bearer s3cret-token", 200),
        ("bearer s3cret-token", 200),
    ],
)
def test_with_a_token_set_only_its_bearer_reads_it(db, client, settings, authorization, status):
    settings.METRICS_TOKEN = "s3cret-token"
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"portal_" not in response.content
    else:
        assert b"portal_department_spend_month_to_date" in response.content


def test_the_token_is_compared_in_constant_time(db, client, settings, monkeypatch):
    import hmac

    settings.METRICS_TOKEN = "s3cret-token"
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("portal.metrics.hmac.compare_digest", spy)
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert compared == [(b"s3cret-token", b"s3cret-token")]


def test_a_scrape_needs_no_session_and_no_https(db, client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_scrape_at_the_pods_address_is_answered_and_a_page_there_is_not(db, client, settings):
    """Prometheus scrapes a pod by its address, which no ALLOWED_HOSTS lists."""
    settings.ALLOWED_HOSTS = ["gpu-portal.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 400
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 401


def test_a_scrape_answers_503_when_the_database_does_not(db, client, monkeypatch):
    def unreachable(now):
        raise DatabaseError("connection refused")
        yield  # pragma: no cover

    monkeypatch.setattr("portal.metrics.DATABASE_FAMILIES", (unreachable,))
    response = client.get("/metrics")
    assert response.status_code == 503
    assert b"database" in response.content


def test_only_reads_are_answered(db, client):
    assert client.post("/metrics").status_code == 405


# --- The request histogram -------------------------------------------------------------------


def test_request_durations_are_labelled_by_url_name_never_by_path(db, client):
    histogram = "portal_http_request_duration_seconds_count"
    requests = [
        ("/healthz", {"method": "GET", "view": "healthz", "status": "200"}),
        ("/departments/nope/", {"method": "GET", "view": "departments:detail", "status": "302"}),
        ("/api/v1/departments/", {"method": "GET", "view": "departments-list", "status": "401"}),
        ("/no-such-page/", {"method": "GET", "view": "unmatched", "status": "404"}),
        ("/no-such-page/either/", {"method": "GET", "view": "unmatched", "status": "404"}),
    ]
    before = scrape(client)
    for path, _ in requests:
        client.get(path)
    client.generic("BREW", "/metrics")
    after = scrape(client)

    def grew(labels):
        return (value(after, histogram, **labels) or 0) - (value(before, histogram, **labels) or 0)

    assert grew({"method": "GET", "view": "healthz", "status": "200"}) == 1
    assert grew({"method": "GET", "view": "departments:detail", "status": "302"}) == 1
    assert grew({"method": "GET", "view": "departments-list", "status": "401"}) == 1
    assert grew({"method": "GET", "view": "unmatched", "status": "404"}) == 2
    # A method nobody defined is not a label value of its own.
    assert grew({"method": "other", "view": "metrics", "status": "405"}) == 1
    # The scrape itself is timed under its name.
    assert grew({"method": "GET", "view": "metrics", "status": "200"}) == 1
    views = {labels["view"] for labels in series(after, histogram)}
    assert not any("/" in view for view in views), views


def test_request_durations_are_a_histogram_with_buckets_and_a_sum(db, client):
    client.get("/healthz")
    samples = scrape(client)
    labels = {"method": "GET", "view": "healthz", "status": "200"}
    count = value(samples, "portal_http_request_duration_seconds_count", **labels)
    inf = value(samples, "portal_http_request_duration_seconds_bucket", le="+Inf", **labels)
    total = value(samples, "portal_http_request_duration_seconds_sum", **labels)
    assert count >= 1 and inf == count
    assert 0 < total < 60 * count


# --- What a scrape costs ---------------------------------------------------------------------


def _department_with_everything(n: int, *, gpu_class, source, now) -> None:
    department = factories.DepartmentFactory(slug=f"dept-{n}", name=f"Department {n}")
    factories.QuotaFactory(department=department, kind=QuotaKind.GPU_HOURS_MONTH, limit=100)
    factories.QuotaFactory(
        department=department, kind=QuotaKind.GPU_HOURS_MONTH, limit=10, gpu_class=gpu_class
    )
    factories.ServiceLevelFactory(department=department, tier=Tier.BATCH, gpu_classes=[gpu_class])
    for state in ("queued", "waiting", "running"):
        factories.GenerationJobFactory(
            department=department, gpu_class=gpu_class, state=state, tier=Tier.BATCH
        )
    factories.UsageRecordFactory(
        source=source, department=department, gpu_class=gpu_class, hour_start=recent_hour(now)
    )


def _scrape_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        scrape(client)
    return len(queries)


def test_a_scrape_costs_the_same_queries_for_one_department_as_for_twenty(
    db, client, django_assert_max_num_queries
):
    now = timezone.now()
    a100 = factories.GpuClassFactory(slug="a100", name="A100")
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    source = Ledger().source
    _department_with_everything(0, gpu_class=a100, source=source, now=now)
    billing_services.period_refresh(month=month_of(now))
    one = _scrape_queries(client)
    assert one <= 8

    for n in range(1, 20):
        _department_with_everything(n, gpu_class=a100, source=source, now=now)
    billing_services.period_refresh(month=month_of(now))
    with django_assert_max_num_queries(one):
        samples = scrape(client)
    # And the scrape did read the twenty of them.
    assert len(series(samples, "portal_budget_used_gpu_hours")) == 40
    assert len(series(samples, "portal_department_spend_month_to_date")) == 20
    assert value(samples, "portal_jobs", department="dept-19", tier="batch", state="waiting") == 1


def test_cluster_drifts_count_the_open_findings_of_each_cluster(db, client):
    """Every cluster of the fleet has its series (0 where nothing drifted); a resolved
    finding no longer counts."""
    from cluster.models import DriftFinding

    factories.ClusterFactory(slug="prod-eu", name="Prod EU")
    factories.ClusterFactory(slug="prod-us", name="Prod US")
    marketing = factories.DepartmentFactory(slug="marketing")
    now = timezone.now()

    def finding(name, resolved_at=None):
        return DriftFinding.objects.create(
            cluster="prod-eu",
            department=marketing,
            kind="ResourceQuota",
            namespace="dept-marketing",
            name=name,
            field="requests.nvidia.com/gpu",
            wanted="8",
            found="12",
            first_seen=now - HOUR,
            last_seen=now - HOUR,
            resolved_at=resolved_at,
        )

    finding("gpu")
    finding("gpu-2")
    finding("gpu", resolved_at=now)
    samples = scrape(client)
    assert value(samples, "portal_cluster_drifts", cluster="prod-eu") == 2
    assert value(samples, "portal_cluster_drifts", cluster="prod-us") == 0
