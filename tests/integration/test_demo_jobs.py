"""The demo's jobs end to end, as `make demo` runs them: a manager submits a cpu-load job
over the API, the demo's worker runs it from the embedded broker, its output can be
downloaded, the worker's counter shows its GPU-seconds, the demo's Prometheus scrapes
them, and a pull of the `jobs` source puts them into the ledger. Then the whole worker is
killed: the demo starts it again, the site stays up and the next job runs."""

import datetime as dt
import json
import os
import re
import signal
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

from demo.scenario import DEMO_PASSWORD
from tests.conftest import require_prometheus
from tests.integration.conftest import ROOT, free_port, free_port_pair, running
from tests.integration.test_demo_boots_on_sqlite import (
    Browser,
    _alive,
    _embedded_env,
    _migrate_and_seed,
    _process_tree,
)

pytestmark = pytest.mark.integration

NAMESPACE, GPU_CLASS, KIND = "dept-marketing", "t4", "cpu-load"
COUNTER = "portal_job_gpu_seconds_total"


class Api:
    """The portal's API with a token, as a script of the marketing manager would use it."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        form = urllib.parse.urlencode({"username": username, "password": DEMO_PASSWORD})
        with urllib.request.urlopen(f"{base}/api/v1/auth/token/", data=form.encode()) as answer:
            self.token = json.load(answer)["token"]

    def call(self, path: str, body: dict | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()

    def submit(self, seconds: int) -> dict:
        body = {
            "department": "marketing",
            "kind": KIND,
            "params": {"seconds": seconds},
            "tier": "interactive",
        }
        status, answer = self.call("/api/v1/jobs/", body)
        assert status == 201, answer
        return json.loads(answer)

    def wait_until_ended(self, job_id: str, timeout_s: float = 60) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            status, answer = self.call(f"/api/v1/jobs/{job_id}/")
            assert status == 200, answer
            job = json.loads(answer)
            if job["state"] not in ("submitted", "waiting", "queued", "running"):
                return job
            assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
            time.sleep(0.5)


def _worker_counter(metrics_port: int) -> float | None:
    """The worker's counter for the demo job's labels, from its /metrics; ``None`` when it
    has no such series."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    for line in text.splitlines():
        if line.startswith(COUNTER + "{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if labels == {"namespace": NAMESPACE, "gpu_class": GPU_CLASS, "kind": KIND}:
                return float(line.rsplit(" ", 1)[1])
    return None


def _scraped(prometheus_url: str) -> float | None:
    """The latest value of the counter that Prometheus scraped from the worker."""
    query = f'sum({COUNTER}{{namespace="{NAMESPACE}",gpu_class="{GPU_CLASS}",kind="{KIND}"}})'
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        result = json.load(answer)["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait_for(what: str, check, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while (value := check()) is None:
        assert time.monotonic() < deadline, f"no {what} after {timeout_s} s"
        time.sleep(0.5)
    return value


def _ledger_gpu_hours(database: Path, namespace: str) -> float:
    with sqlite3.connect(database) as db:
        (hours,) = db.execute(
            """
            select coalesce(sum(u.quantity), 0) / 3600.0
            from metering_usagerecord u
            join metering_metricsource s on s.id = u.source_id
            where s.name = 'jobs' and u.namespace = ?
            """,
            [namespace],
        ).fetchone()
    return float(hours)


def test_a_demo_job_runs_on_the_worker_and_its_gpu_seconds_reach_the_ledger(tmp_path):
    require_prometheus()
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    prometheus_url = f"http://127.0.0.1:{free_port()}"
    metrics_port = free_port_pair()
    env = _embedded_env(var_dir, PROMETHEUS_URL=prometheus_url, JOBS_HEARTBEAT_S="1")
    _migrate_and_seed(env)
    base = f"http://127.0.0.1:{free_port()}"
    browser = Browser(base)
    log = tmp_path / "run_demo.log"
    seen: dict[int, str] = {}
    command = ["manage.py", "run_demo", "--port", base.rsplit(":", 1)[1], "--days", "1"]
    command += ["--metrics-port", str(metrics_port), "--scrape-interval", "1s"]

    try:
        with running(command, env=env, ready=browser.healthy, log=log, timeout_s=120) as demo:
            worker_log = var_dir / "log" / "worker.log"

            def worker_ready():
                return (worker_log.exists() and " ready." in worker_log.read_text()) or None

            _wait_for("ready worker", worker_ready)
            seen.update(_process_tree(demo.pid))
            worker = next(c for c in seen.values() if "celery -A portal worker" in c)
            assert "gpu.t4.interactive" in worker and "celery," in worker
            api = Api(base, "marketing-manager")
            # The worker created the series at 0 when it started, before any job ran: the
            # first job's seconds are an increase Prometheus can see.
            assert _worker_counter(metrics_port) == 0.0
            # ... and Prometheus has scraped that 0 (every 15 s): increase() needs a sample
            # from before the job to count the job's seconds.
            assert _wait_for("scraped zero", lambda: _scraped(prometheus_url)) == 0.0

            first = api.submit(seconds=3)
            assert (first["state"], first["gpu_class"], first["namespace"]) == (
                "queued",
                GPU_CLASS,
                NAMESPACE,
            )
            first = api.wait_until_ended(first["id"])
            seen.update(_process_tree(demo.pid))
            assert first["state"] == "succeeded", first
            assert 3 <= float(first["gpu_seconds"]) < 30

            # The output is in the job's folder and downloadable over the API.
            result_path = var_dir / "media" / "jobs" / first["id"] / "result.json"
            result = json.loads(result_path.read_text())
            assert result["hashes"] > 0 and result["elapsed_s"] >= 3
            assert [o["name"] for o in first["outputs"]] == ["result.json", "job.log"]
            status, download = api.call(f"/api/v1/jobs/{first['id']}/files/result.json/")
            assert status == 200 and json.loads(download) == result

            # The worker counts the job's GPU-seconds under its namespace, class and kind,
            # and the demo's Prometheus scrapes them.
            # (It counts the attempt just after recording its end in the database.)
            expected = float(first["gpu_seconds"])
            counted = _wait_for(
                "count",
                lambda: c if (c := _worker_counter(metrics_port)) else None,
            )
            assert counted == pytest.approx(expected, abs=0.01)
            scraped = _wait_for(
                "scrape",
                lambda: s if (s := _scraped(prometheus_url)) == pytest.approx(counted) else None,
            )
            assert scraped == pytest.approx(counted)

            # The jobs source turns the increase into GPU-hours of the hour in progress
            # (and of the last hour, should the jobs have crossed into this one).
            now = dt.datetime.now(dt.UTC)
            window = ["--start", (now - dt.timedelta(hours=1)).isoformat()]
            window += ["--end", now.isoformat()]
            pulled = subprocess.run(
                [sys.executable, "manage.py", "pull_usage", "--source", "jobs", *window],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert pulled.returncode == 0, pulled.stderr
            gpu_hours = _ledger_gpu_hours(var_dir / "portal.sqlite3", NAMESPACE)
            # The worker created the series at 0 when it started, so even the first job
            # after a start is an increase Prometheus can count.
            first_hours = float(first["gpu_seconds"]) / 3600
            assert first_hours * 0.9 <= gpu_hours <= first_hours * 1.5

            # The worker dies (all of it, as the OOM killer would do it): the demo says so,
            # starts it again, and the site stays up; the next job runs on the new worker.
            readies = worker_log.read_text().count(" ready.")
            pid = next(p for p, c in _process_tree(demo.pid).items() if "portal worker" in c)
            os.killpg(os.getpgid(pid), signal.SIGKILL)
            _wait_for("restart", lambda: "The worker stopped (exit -9)" in log.read_text() or None)
            assert browser.healthy()
            _wait_for(
                "worker ready again",
                lambda: worker_log.read_text().count(" ready.") > readies or None,
                timeout_s=60,
            )
            seen.update(_process_tree(demo.pid))
            second = api.wait_until_ended(api.submit(seconds=1)["id"])
            assert second["state"] == "succeeded", second
            assert demo.poll() is None
        assert demo.returncode == 0, log.read_text()[-3000:]
        left = {pid: command for pid, command in seen.items() if _alive(pid)}
        assert not left, f"still running after the demo stopped: {left}"
    finally:
        for pid in seen:
            if _alive(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
