"""The pages as people see them in a real browser (the distribution's Chromium, driven by
Playwright) against pytest-django's live server, over demo-like data (``demo_seed``, a few
days of ledger, thirty jobs):

- a department manager's pages fit a 390 px wide phone: no sideways page scroll (wide
  tables scroll inside their own box), the nav wraps;
- the download buttons download the file the API offers;
- the jobs list sorts by its column headers and searches from its search box;
- charts: a GPU class has one colour on every page a role sees, and every chart shows its
  legend;
- error pages: a member who opens billing sees the site's styled 403 page with its nav, and
  an unknown job is the styled 404.

Screenshots go to ``$PORTAL_TEST_ARTIFACTS/pages`` (default ``test-artifacts/pages``).
"""

import datetime as dt
import importlib
import io
import os
from decimal import Decimal
from pathlib import Path

import pytest

from core import calendar
from tests.conftest import builtin_sources_install
from tests.integration.conftest import CHROMIUM, require_chromium

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("browser")]

ARTIFACTS = Path(os.environ.get("PORTAL_TEST_ARTIFACTS", "test-artifacts")) / "pages"
PHONE = {"width": 390, "height": 844}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JOBS = 30  # more than a page of the jobs list (25)


# --- Data ---------------------------------------------------------------------------------


def _restore_migration_data() -> None:
    """The groups' permissions and the built-in metric sources come from data migrations,
    which an earlier transactional test's flush may have emptied: run them again (each is
    idempotent), as tests/integration/test_journeys.py does."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    state_apps = MigrationLoader(connection).project_state().apps
    with connection.schema_editor() as editor:
        for module in ("departments", "jobs", "billing"):
            importlib.import_module(f"{module}.migrations.0002_roles").grant(state_apps, editor)
    builtin_sources_install()


def _ledger(now: dt.datetime) -> None:
    """What pulls of the billing source would have written: marketing on T4 and A100,
    customer service on A100, over the last six days and a day of last month."""
    from django.utils import timezone

    from demo.scenario import A100_MODEL, T4_MODEL
    from departments.models import Department, GpuClass
    from metering.models import MeteringRun, RunStatus, UsageRecord
    from metering.selectors import billing_sources

    (source,) = billing_sources()
    hour = now.replace(minute=0, second=0, microsecond=0)
    last_month = (hour.replace(day=1) - dt.timedelta(days=1)).replace(day=10, hour=9)
    first = min(last_month, hour - dt.timedelta(days=6))
    run = MeteringRun.objects.create(
        source=source,
        window_start=first,
        window_end=hour,
        status=RunStatus.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    classes = {c.slug: c for c in GpuClass.objects.all()}
    departments = {d.slug: d for d in Department.objects.all()}
    plan = [
        ("marketing", "dept-marketing", "t4", T4_MODEL, Decimal(2)),
        ("marketing", "dept-marketing", "a100", A100_MODEL, Decimal(1)),
        ("customer-service", "dept-customer-service", "a100", A100_MODEL, Decimal(3)),
    ]
    starts = [last_month] + [hour - dt.timedelta(days=d, hours=3) for d in range(1, 7)]
    UsageRecord.objects.bulk_create(
        UsageRecord(
            source=source,
            namespace=namespace,
            gpu_model=model,
            hour_start=start,
            department=departments[slug],
            gpu_class=classes[gpu],
            quantity=gpus * 3600,  # GPU-seconds
            run=run,
        )
        for start in starts
        for slug, namespace, gpu, model, gpus in plan
    )


def _jobs(now: dt.datetime) -> None:
    """Thirty marketing jobs over the last days: two kinds, both submitters, GPU time
    growing with age (so sorting by it is visible)."""
    from django.contrib.auth import get_user_model

    from departments.models import Department, GpuClass
    from jobs.models import JobKind
    from tests.factories import GenerationJobFactory

    users = get_user_model().objects
    marketing = Department.objects.get(slug="marketing")
    t4 = GpuClass.objects.get(slug="t4")
    kinds = [JobKind.objects.get(slug="lipsync-render"), JobKind.objects.get(slug="cpu-load")]
    people = [users.get(username="marketing-manager"), users.get(username="marketing-member")]
    for n in range(JOBS):
        GenerationJobFactory(
            department=marketing,
            submitter=people[n % 2],
            kind=kinds[n % 3 == 0],
            gpu_class=t4,
            tier="batch",
            namespace="dept-marketing",
            state="succeeded",
            gpu_seconds=Decimal(10 * (n + 1)),
            submitted_at=now - dt.timedelta(hours=5 * n + 1),
            started_at=now - dt.timedelta(hours=5 * n),
            finished_at=now - dt.timedelta(hours=5 * n) + dt.timedelta(minutes=n + 1),
            params={"seconds": 1},
        )


@pytest.fixture
def site(live_server, transactional_db, monkeypatch):
    """The demo's data on the live server; returns ``(base URL, ids)`` where ids are the
    pages' objects: a job, a statement of marketing."""
    require_chromium()
    from django.utils import timezone

    from billing import services as billing_services
    from billing.models import Statement
    from demo.scenario import demo_seed
    from departments.models import GpuClass
    from jobs.models import GenerationJob

    _restore_migration_data()
    demo_seed()
    now = timezone.now()
    _ledger(now)
    _jobs(now)
    billing_services.period_refresh(month=calendar.month_of(now))
    base = live_server.url
    ids = {
        "job": GenerationJob.objects.order_by("-submitted_at").first().pk,
        "statement": Statement.objects.filter(department__slug="marketing")
        .order_by("-period__month")
        .first()
        .pk,
        "gpu_classes": set(GpuClass.objects.values_list("name", flat=True)),
        # Everything the ORM reads is read here, before Playwright's event loop runs under
        # this thread (with it, the ORM may open another connection: on SQLite's in-memory
        # test database, an empty one).
        "cookies": {
            username: _session_cookie(base, username)
            for username in ("finance", "marketing-manager", "marketing-member")
        },
    }
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return base, ids


# --- The browser ---------------------------------------------------------------------------


def _session_cookie(base: str, username: str) -> dict:
    """A signed-in session of ``username``, as the browser's cookie (signing in through
    the form is the journeys' test; here it would only cost time)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": base,
    }


@pytest.fixture
def browser(site):
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
            # While Playwright's loop runs the ORM may use another connection than the
            # test's own (asgiref's locals follow the loop): close it before teardown.
            connections.close_all()


def _page_as(browser, site, username: str, viewport: dict | None = None):
    base, ids = site
    cookie = ids["cookies"][username]
    context = browser.new_context(base_url=base, viewport=viewport, accept_downloads=True)
    context.set_default_timeout(15_000)
    context.add_cookies([cookie])
    return context.new_page()


def _open(page, path: str, status: int = 200):
    answer = page.goto(path)
    assert answer is not None and answer.status == status, (path, answer and answer.status)
    page.wait_for_load_state("networkidle")
    # Plotly draws after load: wait for every chart's drawing.
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.chart > div'))"
        ".every(el => el.querySelector('.main-svg'))"
    )
    return answer


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# --- Phone width ---------------------------------------------------------------------------


def _manager_pages(ids) -> list[tuple[str, str]]:
    return [
        ("home", "/"),
        ("department", "/departments/marketing/"),
        ("alerts", "/departments/marketing/alerts/"),
        ("jobs", "/jobs/"),
        ("job-submit", "/jobs/submit/"),
        (
            "job-submit-parameters",
            "/jobs/submit/?department=marketing&kind=lipsync-render&tier=batch",
        ),
        ("job", f"/jobs/{ids['job']}/"),
        ("billing", "/billing/"),
        ("statements", "/billing/statements/"),
        ("statement", f"/billing/statements/{ids['statement']}/"),
    ]


def test_a_managers_pages_fit_a_390_px_phone_without_sideways_scroll(site, browser):
    ids = site[1]
    page = _page_as(browser, site, "marketing-manager", viewport=PHONE)
    too_wide = {}
    for name, path in _manager_pages(ids):
        _open(page, path)
        _shot(page, f"phone-{name}")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            # What sticks out, to name it in the failure.
            too_wide[path] = (
                width,
                page.evaluate(
                    """() => Array.from(document.querySelectorAll('body *'))
                    .filter(el => el.getBoundingClientRect().right > innerWidth + 1)
                    .filter(el => !el.closest('.table-scroll, .chart'))
                    .slice(0, 5).map(el => el.tagName + '.' + el.className)"""
                ),
            )
        # The nav is on the page and none of its links lies outside it.
        assert page.locator("header.topbar nav a").first.is_visible()
        right = page.evaluate(
            "Math.max(...Array.from(document.querySelectorAll('header.topbar a, header.topbar"
            " button')).map(el => el.getBoundingClientRect().right))"
        )
        assert right <= PHONE["width"], (path, right)
    assert too_wide == {}


# --- Downloads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "path", "expected"),
    [
        ("finance", "/billing/", {"CSV": "text/csv", "XLSX": XLSX}),
        ("marketing-manager", "/billing/", {"CSV": "text/csv", "XLSX": XLSX}),
        ("marketing-manager", "/billing/statements/", {"CSV": "text/csv", "XLSX": XLSX}),
        ("marketing-manager", "/jobs/?state=succeeded", {"CSV": "text/csv"}),
        ("marketing-manager", "/departments/marketing/", {"CSV": "text/csv", "XLSX": XLSX}),
    ],
)
def test_the_download_buttons_download_the_file(site, browser, username, path, expected):
    page = _page_as(browser, site, username)
    _open(page, path)
    buttons = page.locator("a.download")
    assert sorted(buttons.all_inner_texts()) == sorted(expected)
    for label, content_type in expected.items():
        link = page.locator("a.download", has_text=label)
        with page.expect_download() as waiting:
            link.click()
        download = waiting.value
        assert download.failure() is None
        assert download.suggested_filename.endswith(f".{label.lower()}")
        body = Path(download.path()).read_bytes()
        answer = page.context.request.get(link.get_attribute("href"))
        assert answer.status == 200
        assert answer.headers["content-type"].startswith(content_type)
        if label == "CSV":
            assert answer.body() == body
            assert len(body.decode().splitlines()) >= 2, body[:300]
        else:
            # The workbook's zip holds its write time: compare what the sheets hold.
            assert _sheet_rows(answer.body()) == _sheet_rows(body)
            assert len(_sheet_rows(body)) >= 2


def _sheet_rows(xlsx: bytes) -> list[tuple]:
    from openpyxl import load_workbook

    return list(load_workbook(io.BytesIO(xlsx), read_only=True).active.values)


# --- Sorting and searching the jobs list ---------------------------------------------------


def _gpu_seconds(page) -> list[Decimal]:
    cells = page.locator("table tbody tr td.gpu-seconds").all_inner_texts()
    return [Decimal(text.replace(",", "")) for text in cells]


def test_the_jobs_list_sorts_by_its_headers_and_searches_from_its_box(site, browser):
    page = _page_as(browser, site, "marketing-manager")
    _open(page, "/jobs/")
    assert "Page 1 of 2" in page.locator(".pager").inner_text()

    page.locator("th a.sort", has_text="GPU-seconds").click()
    page.wait_for_url("**sort=-gpu_seconds**")
    largest_first = _gpu_seconds(page)
    assert largest_first[0] == Decimal(10 * JOBS)
    assert largest_first == sorted(largest_first, reverse=True)
    assert page.locator('th[aria-sort="descending"]').inner_text().startswith("GPU-seconds")
    _shot(page, "jobs-sorted-by-gpu-seconds")

    page.locator("th a.sort", has_text="GPU-seconds").click()
    page.wait_for_url("**sort=gpu_seconds**")
    assert _gpu_seconds(page)[:3] == [Decimal(10), Decimal(20), Decimal(30)]

    # The search keeps the sort; every row it leaves is a CPU-load job.
    page.fill("input[name=q]", "cpu")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=cpu**")
    assert "sort=gpu_seconds" in page.url
    kinds = page.locator("table tbody tr td:nth-child(2)").all_inner_texts()
    assert kinds and set(kinds) == {"CPU load"}, kinds
    assert len(kinds) == len(range(0, JOBS, 3))
    _shot(page, "jobs-searched")

    # The submitter and the dates narrow it further.
    page.select_option("select[name=submitter]", "marketing-member")
    page.fill("input[name=submitted_after]", "2000-01-01")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**submitter=marketing-member**")
    submitters = page.locator("table tbody tr td:nth-child(7) .muted").all_inner_texts()
    assert submitters and set(submitters) == {"marketing-member"}

    # A date the calendar cannot hold is a message on the page, not a failure.
    _open(page, "/jobs/?submitted_before=9999-12-31")
    assert page.locator("p.error", has_text="Submitted before").count() == 1


# --- Charts: stable colours, legends (issue 12's chart helper) -----------------------------

TRACES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    id: el.id,
    legend: el.querySelector('.legend') !== null,
    traces: (el.data || []).map(t => ({
        name: t.name,
        color: (t.marker && typeof t.marker.color === 'string') ? t.marker.color
             : (t.line && t.line.color) || null,
    })),
}))"""


def _charts(page, path: str) -> list[dict]:
    _open(page, path)
    return page.evaluate(TRACES)


@pytest.mark.parametrize(
    ("username", "paths"),
    [
        (
            "finance",
            ["/billing/", "/departments/marketing/", "/departments/customer-service/"],
        ),
        ("marketing-manager", ["/billing/", "/departments/marketing/"]),
    ],
)
def test_a_gpu_class_has_one_colour_on_every_page_a_role_sees(site, browser, username, paths):
    classes = site[1]["gpu_classes"]
    page = _page_as(browser, site, username)
    seen: dict[str, set] = {}
    for path in paths:
        for chart in _charts(page, path):
            for trace in chart["traces"]:
                if trace["name"] in classes:
                    seen.setdefault(trace["name"], set()).add((path, chart["id"], trace["color"]))
    assert {"A100", "T4"} <= set(seen), seen
    colours = {}
    for name, where in seen.items():
        found = {colour for _, _, colour in where}
        assert None not in found, f"{name} has no colour of its own on {sorted(where)}"
        assert len(found) == 1, f"{name} changes colour: {sorted(where)}"
        colours[name] = found.pop()
    assert len(set(colours.values())) == len(colours), colours


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("finance", "/billing/"),
        ("finance", "/departments/marketing/"),
        ("marketing-manager", "/departments/marketing/"),
    ],
)
def test_every_chart_shows_its_legend(site, browser, username, path):
    page = _page_as(browser, site, username)
    charts = _charts(page, path)
    assert charts, f"no chart on {path}"
    _shot(page, f"legends-{username}-{path.strip('/').replace('/', '-') or 'home'}")
    assert [c["id"] for c in charts if not c["legend"]] == []


# --- Error pages (issue 12's error-page helper) --------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "name"),
    [
        ("/billing/", 403, "403-member-opens-billing"),
        ("/jobs/00000000-0000-0000-0000-000000000000/", 404, "404-unknown-job"),
    ],
)
def test_a_member_sees_the_sites_styled_error_page_with_its_nav(site, browser, path, status, name):
    page = _page_as(browser, site, "marketing-member")
    _open(page, path, status=status)
    _shot(page, name)
    nav = page.locator("header.topbar nav")
    assert nav.count() == 1 and nav.locator("a", has_text="Jobs").is_visible()
    # The site's stylesheet applies: its page background, not the browser's white.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 246, 250)", background
    assert page.locator("main h1").count() == 1
