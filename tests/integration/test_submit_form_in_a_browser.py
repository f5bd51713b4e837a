"""Step 1 of the submit form in a real browser (the distribution's Chromium, driven by
Playwright) over the demo's departments: its script (static/portal/submit.js) shows the
off-peak notice of the chosen department and tier only, and offers only the tiers the
chosen department has service levels for and the chosen kind allows."""

import pytest

from tests.integration.conftest import CHROMIUM, require_chromium
from tests.integration.test_pages_in_a_browser import (
    _restore_migration_data,
    _session_cookie,
)

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("browser")]

BATCH_NOTICE = 'p.notice.off-peak[data-department="marketing"][data-tier="batch"]'


@pytest.fixture
def site(live_server, transactional_db, monkeypatch):
    """The demo's departments on the live server, the customer-service manager a member of
    marketing too; returns ``(base URL, session cookies by username)``."""
    require_chromium()
    from django.contrib.auth import get_user_model

    from demo.scenario import demo_seed
    from departments.models import Department, Membership

    _restore_migration_data()
    demo_seed()
    Membership.objects.create(
        user=get_user_model().objects.get(username="cs-manager"),
        department=Department.objects.get(slug="marketing"),
        role=Membership.Role.MEMBER,
    )
    base = live_server.url
    cookies = {name: _session_cookie(base, name) for name in ("marketing-manager", "cs-manager")}
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return base, cookies


@pytest.fixture
def open_form(site):
    from django.db import connections
    from playwright.sync_api import sync_playwright

    base, cookies = site
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )

        def _open(username: str):
            context = chromium.new_context(base_url=base)
            context.set_default_timeout(15_000)
            context.add_cookies([cookies[username]])
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            answer = page.goto("/jobs/submit/")
            assert answer is not None and answer.status == 200
            page.wait_for_load_state("networkidle")
            return page, errors

        try:
            yield _open
        finally:
            chromium.close()
            connections.close_all()


def _offered(page) -> list[str]:
    return page.eval_on_selector_all(
        "select[name=tier] option", "options => options.filter(o => !o.disabled).map(o => o.value)"
    )


def test_the_batch_notice_shows_only_once_batch_is_chosen(open_form):
    page, errors = open_form("marketing-manager")
    tier = page.locator("select[name=tier]")
    assert tier.input_value() == "interactive"
    # The notice is on the page (for browsers without the script), hidden for interactive.
    assert page.locator(BATCH_NOTICE).count() == 1
    assert page.locator(BATCH_NOTICE).is_hidden()
    tier.select_option("batch")
    assert page.locator(BATCH_NOTICE).is_visible()
    assert (
        "Batch jobs of Marketing wait for the off-peak window"
        in page.locator(BATCH_NOTICE).inner_text()
    )
    tier.select_option("interactive")
    assert page.locator(BATCH_NOTICE).is_hidden()
    # Marketing has no realtime service level: never offered.
    assert _offered(page) == ["interactive", "batch"]
    assert errors == []


def test_the_tiers_follow_the_chosen_department_and_kind(open_form):
    page, errors = open_form("cs-manager")
    department = page.locator("select[name=department]")
    kind = page.locator("select[name=kind]")
    tier = page.locator("select[name=tier]")
    # Customer Service (shown first) has realtime and interactive; a kind that runs
    # realtime keeps both, one that does not leaves interactive.
    kind.select_option("speech-synthesis")
    assert department.input_value() == "customer-service"
    assert _offered(page) == ["realtime", "interactive"]
    tier.select_option("realtime")
    kind.select_option("lipsync-render")
    assert _offered(page) == ["interactive"]
    assert tier.input_value() == "interactive"
    # Marketing: batch and interactive, never realtime, whatever the kind.
    department.select_option("marketing")
    kind.select_option("speech-synthesis")
    assert _offered(page) == ["interactive", "batch"]
    assert page.locator(BATCH_NOTICE).is_hidden()
    tier.select_option("batch")
    assert page.locator(BATCH_NOTICE).is_visible()
    # Back to Customer Service: batch is not its tier, so the choice moves to its
    # favourite (realtime), and marketing's notice goes.
    department.select_option("customer-service")
    assert tier.input_value() == "realtime"
    assert page.locator(BATCH_NOTICE).is_hidden()
    assert errors == []
