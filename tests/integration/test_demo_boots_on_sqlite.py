"""The embedded mode `make demo` runs: migrate and seed a fresh SQLite file, serve it, and
sign in over real HTTP with a printed login; then the whole demo (`run_demo`): a local
Prometheus over backfilled demo history, the ledger pulled from it, a worker with beat and
the web server, all stopped together."""

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import suppress
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo.scenario import DEMO_PASSWORD
from tests.conftest import require_prometheus
from tests.integration.conftest import ROOT, free_port, free_port_pair, portal_env, running

pytestmark = pytest.mark.integration


def _embedded_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """The defaults `make demo` runs on, whatever this shell exports, except ``overrides``."""
    defaults = {"DATABASE_URL": None, "CELERY_BROKER_URL": None, "DEBUG": None}
    return portal_env(
        **{**defaults, "PROMETHEUS_URL": None, **overrides, "PORTAL_VAR_DIR": str(var_dir)}
    )


def _manage(env: dict[str, str], *command: str, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _migrate_and_seed(env: dict[str, str]) -> str:
    for command in (["migrate", "--noinput"], ["seed_demo"]):
        done = _manage(env, *command)
        assert done.returncode == 0, done.stderr
    return done.stdout


class Browser:
    """A person with a browser: cookies, CSRF, sign-in."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open(self, path: str, data: bytes | None = None, timeout: float = 10):
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, headers={"Referer": f"{self.base}{path}"}
        )
        return self.opener.open(request, timeout=timeout)

    def healthy(self) -> bool:
        try:
            return self.open("/healthz", timeout=2).status == 200
        except OSError:
            return False

    def sign_in(self, username: str):
        self.open("/accounts/login/")
        csrf = next(cookie.value for cookie in self.jar if cookie.name == "csrftoken")
        form = {"csrfmiddlewaretoken": csrf, "username": username, "password": DEMO_PASSWORD}
        return self.open("/accounts/login/", data=urllib.parse.urlencode(form).encode())


def test_a_fresh_machine_migrates_seeds_serves_and_signs_in(tmp_path):
    env = _embedded_env(tmp_path)
    seeded = _migrate_and_seed(env)
    assert "marketing-manager" in seeded and DEMO_PASSWORD in seeded
    assert (tmp_path / "portal.sqlite3").exists()

    base = f"http://127.0.0.1:{free_port()}"
    browser = Browser(base)

    with running(
        ["manage.py", "runserver", "--noreload", base.removeprefix("http://")],
        env=env,
        ready=browser.healthy,
        log=tmp_path / "web.log",
    ):
        home = browser.sign_in("marketing-manager")
        page = home.read().decode()
        assert home.url == f"{base}/"
        assert "Marketing" in page and "dept-marketing" in page and "lipsync-render" in page

        with pytest.raises(urllib.error.HTTPError) as hidden:
            browser.open("/departments/training/")
        assert hidden.value.code == 404


# --- The whole demo: run_demo ---------------------------------------------------------------


def _process_tree(root: int) -> dict[int, str]:
    """The processes below ``root`` (its children, theirs, ...) with their command lines."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = {}, list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        with suppress(OSError):
            tree[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            todo += parents.get(pid, [])
    return tree


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _usage_by_department(database: Path) -> dict[str | None, float]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            """
            select d.slug, sum(u.quantity)
            from metering_usagerecord u
            join metering_metricsource s on s.id = u.source_id
            left join departments_department d on d.id = u.department_id
            where s.name = 'allocation'
            group by d.slug
            """
        ).fetchall()
    return {slug: float(hours) for slug, hours in rows}


def _statement_totals(database: Path) -> dict[str, float]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            """
            select d.slug, sum(s.total)
            from billing_statement s
            join departments_department d on d.id = s.department_id
            group by d.slug
            """
        ).fetchall()
    return {slug: float(total) for slug, total in rows}


def _this_months_totals(database: Path) -> dict[str, float]:
    """Each department's statement total of the latest month (the running one)."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            """
            select d.slug, s.total
            from billing_statement s
            join departments_department d on d.id = s.department_id
            join billing_billingperiod p on p.id = s.period_id
            where p.month = (select max(month) from billing_billingperiod)
            """
        ).fetchall()
    return {slug: float(total) for slug, total in rows}


def _prometheus_query(url: str, query: str) -> list:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=10) as answer:
        return json.load(answer)["data"]["result"]


METRICS_TOKEN = "demo-test-metrics-token"


def test_run_demo_serves_the_backfilled_history_and_stops_every_process(tmp_path):
    require_prometheus()
    var_dir = tmp_path / "var"
    prometheus_url = f"http://127.0.0.1:{free_port()}"
    env = _embedded_env(var_dir, PROMETHEUS_URL=prometheus_url, METRICS_TOKEN=METRICS_TOKEN)
    var_dir.mkdir()
    _migrate_and_seed(env)
    base = f"http://127.0.0.1:{free_port()}"
    browser = Browser(base)
    log = tmp_path / "run_demo.log"
    started: dict[int, str] = {}
    metrics_port = free_port_pair()
    provider_port = free_port()

    try:
        with running(
            [
                *("manage.py", "run_demo", "--port", base.rsplit(":", 1)[1], "--days", "3"),
                *("--metrics-port", str(metrics_port)),
                *("--identity-provider-port", str(provider_port)),
            ],
            env=env,
            ready=browser.healthy,
            log=log,
            timeout_s=120,
        ) as supervisor:
            worker_log = var_dir / "log" / "worker.log"
            deadline = time.monotonic() + 30
            while " ready." not in (worker_log.read_text() if worker_log.exists() else ""):
                assert time.monotonic() < deadline, worker_log.read_text()[-3000:]
                time.sleep(0.2)
            started = _process_tree(supervisor.pid)
            commands = " | ".join(started.values())
            assert f"--web.listen-address={prometheus_url.removeprefix('http://')}" in commands
            assert "celery -A portal worker" in commands and "gunicorn portal.wsgi" in commands
            assert "celery -A portal beat" in commands
            # The worker takes the jobs of every GPU class and tier besides the periodic
            # tasks, and the demo's Prometheus scrapes its job counter.
            assert "-Q celery,gpu.a100.realtime,gpu.a100.interactive," in commands
            assert "gpu.t4.batch" in commands
            config = (var_dir / "prometheus.yml").read_text()
            pool_port = metrics_port + 1
            assert f'targets: ["127.0.0.1:{metrics_port}", "127.0.0.1:{pool_port}"]' in config
            # On the next port, what kube-state-metrics would say of the worker's pods in
            # the worker pool: the allocation the pool's idle is measured from.
            with urllib.request.urlopen(f"http://127.0.0.1:{pool_port}/metrics") as answer:
                pods = answer.read().decode()
            assert 'namespace="gpu-workers"' in pods and 'resource="nvidia_com_gpu"' in pods
            # ... and of a cluster that applied the portal's objects, one quota edited by
            # hand: the drift check compares them through the demo's Prometheus.
            deadline = time.monotonic() + 60
            while not _prometheus_query(prometheus_url, "kueue_cluster_queue_status"):
                assert time.monotonic() < deadline, "the cluster stand-in was never scraped"
                time.sleep(1)
            drift = _manage(env, "cluster_drift")
            assert "customer-service: in sync" in drift.stdout, drift.stdout + drift.stderr
            assert "training: in sync" in drift.stdout
            assert (
                "marketing: drifted\n    - ResourceQuota dept-marketing/gpu hard "
                "requests.nvidia.com/gpu: wanted 8, found 12"
            ) in drift.stdout
            # ... and the web server's /metrics, with the bearer token it requires; the web
            # runs with the portal's gunicorn configuration (its own multiprocess folder).
            web_target = base.removeprefix("http://")
            assert (
                f'- job_name: portal-web\n    static_configs:\n      - targets: ["{web_target}"]'
                in config
            )
            assert f'credentials: "{METRICS_TOKEN}"' in config
            web_command = next(c for c in started.values() if "gunicorn portal.wsgi" in c)
            assert "portal/gunicorn.conf.py" in web_command

            # The history was backfilled and pulled before the web server answered.
            output = log.read_text()
            assert "written: " in output and "pulled in" in output
            assert list((var_dir / "prometheus").glob("*/meta.json"))
            usage = _usage_by_department(var_dir / "portal.sqlite3")
            assert {"marketing", "customer-service", "training"} <= usage.keys()
            assert all(usage[slug] > 1 for slug in ("marketing", "customer-service", "training"))
            # ... and priced into the departments' statements at the demo's rate cards.
            assert "into statements" in output
            totals = _statement_totals(var_dir / "portal.sqlite3")
            assert all(totals[slug] > 0 for slug in ("marketing", "customer-service", "training"))

            # The web's /metrics: refused without the token; with it, each department's
            # spend is its draft of this month, as the ledger priced it.
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/metrics", timeout=10)
            assert refused.value.code == 401
            scrape = urllib.request.Request(
                f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            with urllib.request.urlopen(scrape, timeout=30) as answer:
                families = list(text_string_to_metric_families(answer.read().decode()))
            spend = {
                sample.labels["department"]: sample.value
                for family in families
                for sample in family.samples
                if sample.name == "portal_department_spend_month_to_date"
            }
            this_month = _this_months_totals(var_dir / "portal.sqlite3")
            assert {"marketing", "customer-service", "training"} <= this_month.keys()
            assert {slug: spend[slug] for slug in this_month} == this_month
            # The demo's Prometheus scrapes it (its first scrape of the web may have come
            # before the web answered: the next one, within the scrape interval).
            deadline = time.monotonic() + 60
            while not _prometheus_query(
                prometheus_url, 'portal_department_spend_month_to_date{job="portal-web"}'
            ):
                assert time.monotonic() < deadline, _prometheus_query(
                    prometheus_url, 'up{job="portal-web"}'
                )
                time.sleep(1)
            assert [
                r["value"][1] for r in _prometheus_query(prometheus_url, 'up{job="portal-web"}')
            ] == ["1"]

            # The company's identity provider as the demo plays it: the sign-in page offers
            # it, and its access token for a person in marketing-leads reads Marketing only.
            assert "demo.identity_provider" in commands
            login_page = urllib.request.urlopen(f"{base}/accounts/login/").read().decode()
            assert "Sign in with the company account" in login_page
            secret = (var_dir / "identity-provider" / "client_secret").read_text().strip()
            grant = urllib.parse.urlencode(
                {
                    "grant_type": "password",
                    "username": "sso-marketing-lead",
                    "password": DEMO_PASSWORD,
                    "client_id": "gpu-portal",
                    "client_secret": secret,
                    "scope": "openid profile email groups",
                }
            ).encode()
            token_url = f"http://localhost:{provider_port}/oauth/token"
            with urllib.request.urlopen(token_url, data=grant, timeout=30) as answer:
                access_token = json.loads(answer.read())["access_token"]
            departments = urllib.request.Request(
                f"{base}/api/v1/departments/", headers={"Authorization": f"Bearer {access_token}"}
            )
            with urllib.request.urlopen(departments, timeout=30) as answer:
                slugs = [d["slug"] for d in json.loads(answer.read())["results"]]
            assert slugs == ["marketing"]

            assert browser.sign_in("cs-manager").url == f"{base}/"
            page = browser.open("/departments/customer-service/").read().decode()
            assert "GPU-hours per day by GPU class" in page and '<div class="chart">' in page
            assert "No GPU-hours were metered" not in page

            # Served as in production: plotly.js by its hashed name, gzipped, cached a year.
            script = re.search(
                r'src="(/static/vendor/plotly/plotly-basic\.min\.[0-9a-f]{12}\.js)"', page
            )
            assert script, "plotly.js is not served by a hashed name"
            request = urllib.request.Request(
                f"{base}{script.group(1)}", headers={"Accept-Encoding": "gzip"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.headers["Content-Encoding"] == "gzip"
                assert "max-age=315360000" in answer.headers["Cache-Control"]
                assert len(answer.read()) < 500_000  # 1.1 MB as it is
            # ... and no debug page: an unknown address is the portal's 404.
            with pytest.raises(urllib.error.HTTPError) as missing:
                browser.open("/no-such-page/")
            assert missing.value.code == 404
            assert "DEBUG = True" not in missing.value.read().decode()
        # running() has sent SIGTERM and waited for the supervisor.
        assert supervisor.returncode == 0, log.read_text()[-3000:]
        assert "The demo has stopped." in log.read_text()
        left = {pid: command for pid, command in started.items() if _alive(pid)}
        assert not left, f"still running after the demo stopped: {left}"
    finally:
        for pid in started:
            if _alive(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_run_demo_names_the_port_when_something_already_listens_there(tmp_path):
    require_prometheus()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = _embedded_env(tmp_path, PROMETHEUS_URL=f"http://127.0.0.1:{port}")

        done = _manage(env, "run_demo", "--port", str(free_port()), timeout=60)

    assert done.returncode != 0
    assert f"Port {port}, for the demo's Prometheus" in done.stderr
    assert "PROMETHEUS_URL=http://127.0.0.1:9091" in done.stderr
    assert not (tmp_path / "prometheus").exists()


def test_run_demo_says_how_to_install_prometheus_when_it_cannot(tmp_path):
    env = _embedded_env(tmp_path, PROMETHEUS_BIN=str(tmp_path / "no-such-prometheus"))

    done = _manage(env, "run_demo", "--port", str(free_port()), timeout=60)

    assert done.returncode != 0
    assert "no-such-prometheus" in done.stderr
    assert "apt-get install prometheus" in done.stderr and "PROMTOOL_BIN" in done.stderr
