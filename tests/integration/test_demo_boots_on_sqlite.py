"""The embedded mode `make demo` runs: migrate and seed a fresh SQLite file, serve it, and
sign in over real HTTP with a printed login."""

import http.cookiejar
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from portal.demo import DEMO_PASSWORD
from tests.integration.conftest import ROOT, free_port, portal_env, running

pytestmark = pytest.mark.integration


def test_a_fresh_machine_migrates_seeds_serves_and_signs_in(tmp_path):
    env = portal_env(
        PORTAL_VAR_DIR=str(tmp_path), DATABASE_URL=None, CELERY_BROKER_URL=None, DEBUG=None
    )
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
    assert "marketing-manager" in done.stdout and DEMO_PASSWORD in done.stdout
    assert (tmp_path / "portal.sqlite3").exists()

    base = f"http://127.0.0.1:{free_port()}"
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def healthy() -> bool:
        try:
            return browser.open(f"{base}/healthz", timeout=2).status == 200
        except OSError:
            return False

    with running(
        ["manage.py", "runserver", "--noreload", base.removeprefix("http://")],
        env=env,
        ready=healthy,
        log=tmp_path / "web.log",
    ):
        browser.open(f"{base}/accounts/login/")
        csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
        form = urllib.parse.urlencode(
            {
                "csrfmiddlewaretoken": csrf,
                "username": "marketing-manager",
                "password": DEMO_PASSWORD,
            }
        ).encode()
        request = urllib.request.Request(
            f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
        )
        home = browser.open(request)
        page = home.read().decode()
        assert home.url == f"{base}/"
        assert "Marketing" in page and "dept-marketing" in page and "lipsync-render" in page

        with pytest.raises(urllib.error.HTTPError) as hidden:
            browser.open(f"{base}/departments/training/")
        assert hidden.value.code == 404
