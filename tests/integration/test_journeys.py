"""Three people's journeys through the portal in a real browser (the distribution's
Chromium, driven by Playwright) against a live server over PostgreSQL and a real Celery
worker over Redis:

1. IT sets up a new department in the admin: a namespace, a manager, a daily job quota
   (limit 1, hard queue) and an interactive service level on T4.
2. Its manager submits a quick ``cpu-load`` job, follows it to *Succeeded*, downloads its
   ``result.json``, and submits a second one, which waits for the daily quota and says so.
3. Finance opens last month's billing (ledger rows of the department's namespace are
   written directly, as a metering pull would have), sees the department in the chart and
   the table, finalizes its statement, downloads the PDF and the CSV, and cannot change
   the statement afterwards.

Each journey saves screenshots of its key pages under
``$PORTAL_TEST_ARTIFACTS/journeys`` (default ``test-artifacts/journeys``).
"""

import csv as csvlib
import datetime as dt
import io
import json
import os
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from demo.scenario import DEMO_PASSWORD
from tests.conftest import builtin_sources_install
from tests.integration.conftest import (
    CHROMIUM,
    broker_queues_delete,
    celery_worker,
    database_quiet,
    database_url,
    free_port,
    portal_env,
    require_chromium,
    running,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(os.environ.get("PORTAL_TEST_ARTIFACTS", "test-artifacts")) / "journeys"

DEPARTMENT, SLUG, NAMESPACE = "Research Lab", "research-lab", "dept-research-lab"
MANAGER = "research-manager"
QUEUE_PREFIX = "gpu.t4"  # the demo's T4 class
# Last month's ledger for the department: 4 hours of 2.5 T4 GPUs at the demo's 0.55 EUR.
LEDGER_HOURS, LEDGER_GPUS, T4_PRICE = 4, Decimal("2.5"), Decimal("0.55")
EXPECTED_TOTAL = LEDGER_HOURS * LEDGER_GPUS * T4_PRICE  # 5.50


# --- Setup --------------------------------------------------------------------------------


def _restore_migration_data() -> None:
    """The groups with their permissions and the built-in metric sources come from data
    migrations, which an earlier transactional test's flush may have emptied: run them
    again (each is idempotent)."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    state_apps = MigrationLoader(connection).project_state().apps
    with connection.schema_editor() as editor:
        for module, function in [
            ("departments.migrations.0002_roles", "grant"),
            ("jobs.migrations.0002_roles", "grant"),
            ("billing.migrations.0002_roles", "grant"),
            ("accounts.migrations.0002_roles", "grant"),
        ]:
            getattr(importlib.import_module(module), function)(state_apps, editor)
    builtin_sources_install()


def _seed() -> None:
    """The demo's data, and the new department's future manager (in no department yet).
    The people who sign in get a password hash the server's hashers read (the suite's
    own MD5 hasher is this process's only)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from demo.scenario import demo_seed

    demo_seed()
    User = get_user_model()
    User.objects.create(
        username=MANAGER, first_name="Rhea", last_name="Rossi", email="rhea@example.com"
    )
    encoded = PBKDF2PasswordHasher().encode(DEMO_PASSWORD, "journeysalt", iterations=1000)
    User.objects.filter(username__in=["it-admin", "finance", MANAGER]).update(password=encoded)


def _last_month() -> dt.date:
    from django.utils import timezone

    first = timezone.localdate().replace(day=1)
    return (first - dt.timedelta(days=1)).replace(day=1)


def _ledger_last_month(month: dt.date) -> None:
    """What a pull of the billing source would have written for the department's
    namespace last month."""
    from django.utils import timezone

    from departments.models import Department, GpuClass
    from metering.models import MeteringRun, RunStatus, UsageRecord
    from metering.selectors import billing_sources

    (source,) = billing_sources()
    assert source is not None and source.name == "allocation"
    start = dt.datetime(month.year, month.month, 10, 9, tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=LEDGER_HOURS)
    run = MeteringRun.objects.create(
        source=source,
        window_start=start,
        window_end=end,
        status=RunStatus.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        rows_written=LEDGER_HOURS,
    )
    department = Department.objects.get(slug=SLUG)
    t4 = GpuClass.objects.get(slug="t4")
    UsageRecord.objects.bulk_create(
        UsageRecord(
            source=source,
            namespace=NAMESPACE,
            gpu_model="Tesla-T4",
            hour_start=start + dt.timedelta(hours=hour),
            department=department,
            gpu_class=t4,
            quantity=LEDGER_GPUS * 3600,  # GPU-seconds
            run=run,
        )
        for hour in range(LEDGER_HOURS)
    )


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


# --- The browser --------------------------------------------------------------------------


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in(browser, base: str, username: str):
    context = browser.new_context(base_url=base, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return context, page


def _job_page_until(page, states: tuple[str, ...], timeout_s: float = 60) -> str:
    """Reload the job page until its state tag reads one of ``states``."""
    tag = page.locator("h1 .tag")
    deadline = time.monotonic() + timeout_s
    while (state := tag.inner_text().strip()) not in states:
        assert time.monotonic() < deadline, f"job still {state!r} after {timeout_s} s"
        time.sleep(0.5)
        page.reload()
    return state


def _submit_cpu_load(page, seconds: int) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("link", name="Submit job").click()
    page.select_option("#id_department", SLUG)
    page.select_option("#id_kind", "cpu-load")
    page.select_option("#id_tier", "interactive")
    page.get_by_role("button", name="Next: parameters").click()
    page.fill("#id_params-seconds", str(seconds))
    page.get_by_role("button", name="Submit job").click()
    page.wait_for_url("**/jobs/*-*/")


def _journey_it_sets_up_a_department(browser, base: str) -> None:
    from playwright.sync_api import expect

    from departments.models import Department, Membership

    context, page = _sign_in(browser, base, "it-admin")
    page.get_by_role("navigation").get_by_role("link", name="Admin").click()
    page.goto("/admin/departments/department/add/")
    page.locator("#id_name").press_sequentially(DEPARTMENT)
    # The admin's JavaScript makes the slug from the name.
    expect(page.locator("#id_slug")).to_have_value(SLUG)
    page.fill("#id_cost_centre", "CC-7700")
    page.fill("#id_namespaces-0-name", NAMESPACE)
    # The manager: an existing user without a department, through the autocomplete.
    page.locator("#memberships-group .select2-selection").first.click()
    page.locator(".select2-search__field").fill(MANAGER)
    page.locator(".select2-results__option", has_text=MANAGER).click()
    page.select_option("#id_memberships-0-role", "manager")
    page.locator("#quotas-group").get_by_text("Add another Quota").click()
    page.select_option("#id_quotas-0-kind", "jobs_day")
    page.fill("#id_quotas-0-limit", "1")
    page.select_option("#id_quotas-0-enforcement", "hard_queue")
    page.fill("#id_quotas-0-alert_thresholds_pct", "100")
    page.locator("#service_levels-group").get_by_text("Add another Service level").click()
    page.select_option("#id_service_levels-0-tier", "interactive")
    page.fill("#id_service_levels-0-priority", "5")
    page.fill("#id_service_levels-0-max_queue_wait_s", "600")
    page.select_option("#id_service_levels-0-gpu_classes", label="T4")
    _shot(page, "1-it-admin-department-add")
    page.locator("input[name=_save]").click()
    errors = page.locator(".errornote, .errorlist")
    assert errors.count() == 0, errors.all_inner_texts()
    page.wait_for_url("**/admin/departments/department/")
    assert DEPARTMENT in page.locator(".messagelist .success").inner_text()
    _shot(page, "2-it-admin-department-added")
    context.close()

    department = Department.objects.get(slug=SLUG)
    assert [ns.name for ns in department.namespaces.all()] == [NAMESPACE]
    (quota,) = department.quotas.all()
    assert (quota.kind, quota.limit, quota.enforcement) == ("jobs_day", 1, "hard_queue")
    (sla,) = department.service_levels.all()
    assert sla.tier == "interactive"
    assert [c.slug for c in sla.gpu_classes.all()] == ["t4"]
    assert department.memberships.get(user__username=MANAGER).role == Membership.Role.MANAGER


def _journey_manager_runs_jobs(browser, base: str) -> None:
    context, page = _sign_in(browser, base, MANAGER)
    assert DEPARTMENT in page.content() and NAMESPACE in page.content()
    _submit_cpu_load(page, seconds=2)
    _shot(page, "3-manager-job-submitted")
    assert _job_page_until(page, ("Succeeded", "Failed", "Cancelled", "Refused")) == "Succeeded"
    _shot(page, "4-manager-job-succeeded")

    link = page.get_by_role("link", name="result.json", exact=True)
    with page.expect_download() as waiting:
        link.click()
    download = waiting.value
    assert download.suggested_filename == "result.json"
    result = json.loads(Path(download.path()).read_text())
    assert result["hashes"] > 0 and result["elapsed_s"] >= 2

    job_id = page.url.rstrip("/").rsplit("/", 1)[1]

    # The job ran on a worker of the pool: its GPU time is on the department's draft.
    page.get_by_role("navigation").get_by_role("link", name="Billing", exact=True).click()
    page.locator("table.chargeback tbody tr", has_text=DEPARTMENT).locator(
        "a.tag", has_text="Draft"
    ).click()
    page.wait_for_url("**/billing/statements/*/")
    jobs_line = page.locator("tr.line-jobs")
    assert "portal jobs: CPU load × 1" in jobs_line.inner_text(), jobs_line.inner_text()
    _shot(page, "4b-manager-job-on-the-draft-statement")
    jobs_line.get_by_role("link", name="the 1 job").click()
    page.wait_for_url("**/lines/*/jobs/")
    assert page.locator(f'a[href="/jobs/{job_id}/"]').count() == 1

    # The second job of the day waits for the quota, and its page says which.
    _submit_cpu_load(page, seconds=2)
    assert _job_page_until(page, ("Waiting",), timeout_s=15) == "Waiting"
    reason = page.locator("p.reason").inner_text()
    assert "Waiting for the quota Jobs admitted per day" in reason, reason
    assert "limit 1" in reason, reason
    held = page.locator("dt", has_text="Held by quota").locator("xpath=following-sibling::dd[1]")
    assert "Jobs admitted per day" in held.inner_text()
    _shot(page, "5-manager-second-job-waits-for-quota")
    context.close()


def _journey_finance_bills_it(browser, base: str, month: dt.date) -> None:
    from billing.models import Statement

    label = f"{month:%Y-%m}"
    total = f"{EXPECTED_TOTAL:.2f}"
    context, page = _sign_in(browser, base, "finance")
    page.get_by_role("navigation").get_by_role("link", name="Billing", exact=True).click()
    page.goto(f"/billing/?period={label}")

    # The chart: Plotly drew it, with bars, and the department on it.
    chart = page.locator(".chart").first
    chart.locator(".main-svg").first.wait_for()
    assert chart.locator("g.point path, g.trace.bars path").count() > 0
    chart_text = " ".join(chart.locator("svg text").all_text_contents())
    assert DEPARTMENT in chart_text, chart_text
    # The table.
    row = page.locator("table.chargeback tbody tr", has_text=DEPARTMENT)
    assert f"{total} EUR" in row.inner_text(), row.inner_text()
    _shot(page, "6-finance-dashboard")

    row.locator("a.tag", has_text="Draft").click()
    page.wait_for_url("**/billing/statements/*/")
    statement_url = page.url
    statement_id = int(statement_url.rstrip("/").rsplit("/", 1)[1])
    _shot(page, "7-finance-statement-draft")
    # Finalizing asks first, naming the month and the department; finance confirms.
    asked = []

    def confirm(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    with page.expect_navigation():
        page.get_by_role("button", name="Finalize statement").click()
    assert asked and asked[0].startswith("Finalize the "), asked
    assert "A finalized statement never changes" in asked[0]
    page.goto(statement_url)
    assert page.locator("h1 .tag").inner_text().strip() == "Finalized"
    assert page.get_by_role("button", name="Finalize statement").count() == 0
    assert f"{total} EUR" in page.locator("dl.facts").inner_text()
    _shot(page, "8-finance-statement-finalized")

    # The PDF, as the browser downloads it from the statement page's link.
    pdf_href = page.get_by_role("link", name="PDF", exact=True).get_attribute("href")
    assert pdf_href == f"/api/v1/statements/{statement_id}/pdf/"
    pdf = context.request.get(pdf_href)
    assert pdf.ok and pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.body().startswith(b"%PDF") and len(pdf.body()) > 1000
    csv_href = page.get_by_role("link", name="CSV", exact=True).get_attribute("href")
    csv = context.request.get(csv_href)
    assert csv.ok, csv.status
    csv_text = csv.text()
    # The department is named by the file name; the rows are the statement's lines.
    assert f'filename="statement-{SLUG}-{label}.csv"' in csv.headers["content-disposition"]
    lines = list(csvlib.DictReader(io.StringIO(csv_text)))
    assert [(r["kind"], r["gpu_class"], r["amount"]) for r in lines] == [("usage", "t4", total)]
    assert Decimal(lines[0]["gpu_hours"]) == LEDGER_HOURS * LEDGER_GPUS
    assert (lines[0]["department"], lines[0]["period"]) == (SLUG, label)
    (ARTIFACTS / "statement.pdf").write_bytes(pdf.body())
    (ARTIFACTS / "statement.csv").write_text(csv_text)

    # Finalized: the admin shows it read-only and refuses a change.
    change = f"/admin/billing/statement/{statement_id}/change/"
    page.goto(change)
    assert page.locator("input[name=_save]").count() == 0
    assert "View statement" in page.locator("h1").inner_text()
    _shot(page, "9-finance-statement-admin-read-only")
    csrf = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    refused = context.request.post(
        change,
        form={"csrfmiddlewaretoken": csrf, "status": "draft", "total": "0"},
        headers={"Referer": f"{base}{change}"},
    )
    assert refused.status == 403, refused.status
    context.close()

    statement = Statement.objects.get(pk=statement_id)
    assert statement.status == Statement.Status.FINALIZED
    assert statement.total == EXPECTED_TOTAL
    assert statement.finalized_by.username == "finance"


def test_it_sets_up_a_department_its_manager_runs_jobs_and_finance_bills_it(
    tmp_path, redis_url, monkeypatch
):
    require_chromium()
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop under this thread; the ORM calls between
    # the pages are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    _restore_migration_data()
    _seed()
    month = _last_month()

    media = tmp_path / "media"
    base = f"http://127.0.0.1:{free_port()}"
    shared = {
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(media),
        "DEBUG": "true",
        "JOBS_HEARTBEAT_S": "0.5",
        # The worker runs in the demo's worker pool: its jobs are billed to their departments.
        "JOBS_WORKER_NAMESPACE": "gpu-workers",
    }
    broker_queues_delete(redis_url, QUEUE_PREFIX)
    try:
        with (
            celery_worker(
                broker_url=redis_url,
                tmp_path=tmp_path,
                queues=["celery", f"{QUEUE_PREFIX}.interactive"],
                **shared,
            ) as worker,
            running(
                ["manage.py", "runserver", "--noreload", base.removeprefix("http://")],
                env=portal_env(PORTAL_VAR_DIR=str(tmp_path), CELERY_BROKER_URL=redis_url, **shared),
                ready=lambda: _healthy(base),
                log=tmp_path / "web.log",
            ),
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            try:
                _journey_it_sets_up_a_department(browser, base)
                _journey_manager_runs_jobs(browser, base)
                _ledger_last_month(month)
                _journey_finance_bills_it(browser, base, month)
            finally:
                browser.close()
                # While Playwright's loop runs, the ORM's connection is another one than
                # the test's own (asgiref's locals follow the loop): close it here, or it
                # would hold the test database open at teardown.
                connections.close_all()
            worker.wait_idle()
        database_quiet()
    finally:
        broker_queues_delete(redis_url, QUEUE_PREFIX)
