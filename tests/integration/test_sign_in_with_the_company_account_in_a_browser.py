"""Signing in with the company's identity provider in a real browser (the distribution's
Chromium, driven by Playwright), against a live portal over PostgreSQL and a real OpenID
provider (Canaille, tests/oidc_provider.py), through the provider's own sign-in form:

1. a finance person signs in by group and sees every department;
2. a manager mapped to one department sees only it, and signs out, at the provider too;
3. the provider takes the manager out of the group; at the next sign-in the same person
   sees nothing, on a page that says so and names the groups the provider sent.

Screenshots of the key pages go to ``$PORTAL_TEST_ARTIFACTS/sign-in``.
"""

import os
from pathlib import Path

import pytest

from tests.integration.conftest import (
    CHROMIUM,
    database_quiet,
    database_url,
    free_port,
    portal_env,
    require_chromium,
    running,
)
from tests.integration.test_journeys import _healthy, _restore_migration_data
from tests.oidc_provider import password_of

# Its own live server, port and provider: beside the other integration tests.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("sign-in-browser"),
]

ARTIFACTS = Path(os.environ.get("PORTAL_TEST_ARTIFACTS", "test-artifacts")) / "sign-in"


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _sign_in_at_the_provider(browser, base: str, provider, username: str):
    """From the portal's sign-in page, through the provider's form, back to the portal."""
    context = browser.new_context(base_url=base)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/")
    page.wait_for_url("**/accounts/login/**")
    page.get_by_role("link", name="Sign in with Company sign-in").click()
    page.wait_for_url(f"{provider.url}/**")
    page.fill("#login", username)
    page.locator("#loginform button[type=submit]").click()
    page.fill("#password", password_of(username))
    page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{base}/")
    return context, page


def _sign_out(page, base: str, provider) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(lambda url: url.startswith(provider.url) or url.startswith(base))
    if page.url.startswith(provider.url):  # the provider asks before ending its session
        page.locator("button[type=submit]").first.click()
    page.wait_for_url(f"{base}/accounts/login/")


def test_people_sign_in_with_the_company_account_and_their_groups_decide_what_they_see(
    tmp_path, oidc_provider, monkeypatch
):
    require_chromium()
    from django.db import connections
    from playwright.sync_api import expect, sync_playwright

    from accounts.models import RoleMapping
    from core.roles import FINANCE
    from departments.models import Membership
    from tests import factories

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    _restore_migration_data()
    marketing = factories.DepartmentFactory(slug="marketing", name="Marketing")
    factories.NamespaceFactory(name="dept-marketing", department=marketing)
    training = factories.DepartmentFactory(slug="training", name="Training")
    factories.NamespaceFactory(name="dept-training", department=training)
    RoleMapping.objects.create(group="corp-finance", role=FINANCE)
    RoleMapping.objects.create(group="marketing-leads", role="manager", department=marketing)
    oidc_provider.person("fern-finance", groups=["corp-finance", "all-staff"])
    oidc_provider.person("mick-manager", groups=["marketing-leads", "all-staff"])

    base = f"http://127.0.0.1:{free_port()}"
    oidc_provider.allow_redirects_to(base)
    oidc = {**oidc_provider.portal_settings(), "OIDC_PROVIDER_NAME": "Company sign-in"}
    try:
        with (
            running(
                ["manage.py", "runserver", "--noreload", base.removeprefix("http://")],
                env=portal_env(
                    PORTAL_VAR_DIR=str(tmp_path),
                    DATABASE_URL=database_url(),
                    DEBUG="true",
                    **oidc,
                ),
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
                # 1. Finance, by group.
                context, page = _sign_in_at_the_provider(
                    browser, base, oidc_provider, "fern-finance"
                )
                expect(page.get_by_text("All departments")).to_be_visible()
                expect(page.locator("body")).to_contain_text("dept-training")
                expect(page.locator(".who")).to_contain_text("finance")
                _shot(page, "1-finance-home")
                context.close()

                # 2. A manager of marketing: marketing only; then sign out.
                context, page = _sign_in_at_the_provider(
                    browser, base, oidc_provider, "mick-manager"
                )
                expect(page.locator("body")).to_contain_text("dept-marketing")
                expect(page.locator("body")).not_to_contain_text("dept-training")
                _shot(page, "2-manager-home")
                assert page.goto(f"{base}/departments/training/").status == 404
                assert page.goto(f"{base}/departments/marketing/").status == 200
                _sign_out(page, base, oidc_provider)
                assert page.goto(f"{base}/").url.startswith(f"{base}/accounts/login/")
                _shot(page, "3-signed-out")

                # 3. Out of the group at the provider: the next sign-in shows nothing.
                oidc_provider.set_groups("mick-manager", ["all-staff"])
                # The provider's own session ended at sign-out: it asks again who this is.
                page.get_by_role("link", name="Sign in with Company sign-in").click()
                page.wait_for_url(f"{oidc_provider.url}/**")
                page.fill("#login", "mick-manager")
                page.locator("#loginform button[type=submit]").click()
                page.fill("#password", password_of("mick-manager"))
                page.locator("button[type=submit]").first.click()
                page.wait_for_url(f"{base}/")
                expect(page.get_by_role("heading", level=1)).to_contain_text("nothing to see yet")
                expect(page.locator("#no-access")).to_contain_text("all-staff")
                _shot(page, "4-left-the-group")
                assert page.goto(f"{base}/departments/marketing/").status == 404
                assert not Membership.objects.filter(user__username="mick-manager").exists()
                context.close()
            finally:
                browser.close()
                connections.close_all()
    finally:
        database_quiet()
