"""``manage.py run_demo``: the whole portal on one machine, in the embedded mode.

It starts, in this order, and stops in the reverse order on Ctrl-C or SIGTERM:

1. a local Prometheus on 127.0.0.1 at ``PROMETHEUS_URL``'s port, over ``var/prometheus``,
   where 90 days of demo GPU history are backfilled the first time (``--rebuild-history``
   writes them again), and which scrapes the worker's ``portal_job_gpu_seconds_total``
   and the web server's ``/metrics``;
2. after one pull of those days into the ledger, a Celery worker on the configured broker,
   consuming the default queue and the jobs' queues (``gpu.<class>.<tier>`` for every GPU
   class and tier) and serving its job counter on ``--metrics-port``, and Celery beat (the
   periodic pulls, pricing and releases);
3. the company's identity provider as the demo plays it (Canaille, an OpenID Connect
   provider, demo/identity_provider.py) on ``localhost:--identity-provider-port`` over
   ``var/identity-provider``, with the demo's people in their groups; the web server is
   pointed at it, so "Sign in with the company account" works;
4. the web server (gunicorn), with DEBUG off as in production, over plain HTTP: the
   static files are collected under ``var/static`` first, compressed and cached.

A worker, beat or web server that stops is started again (after a pause that grows while
it keeps stopping within a minute of its start, up to ``RESTART_PAUSES_S[-1]``), and the
demo says why, with the end of its log; only Ctrl-C or SIGTERM stops the demo. Every
``PURGE_EVERY_S`` the rows of messages the worker has taken are deleted from the embedded
broker (portal/broker.py), which keeps them otherwise.

The demo job kinds run ``espeak-ng`` and ``ffmpeg``; they are installed with apt-get where
that is possible (as Prometheus is), else the demo says how and runs without them.

Each child runs in its own process group, so stopping one stops whatever it started too.
Logs go to ``var/log/``. The database must be migrated and seeded first (``make demo``
does both).
"""

import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.utils import get_random_secret_key
from django.db import connections

from billing import services as billing
from core import calendar
from demo import local_prometheus, scenario
from departments.models import GpuClass, Tier
from portal import broker, system_packages

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
STOP_TIMEOUT_S = 20
READY_TIMEOUT_S = 60
# Pauses before starting a stopped child again: the n-th quick stop in a row waits the n-th.
RESTART_PAUSES_S = (1, 2, 5, 10, 30, 60)
# A child that ran this long before it stopped starts again at once.
STEADY_AFTER_S = 60
PURGE_EVERY_S = 600
DEFAULT_METRICS_PORT = 9808
DEFAULT_IDENTITY_PROVIDER_PORT = 9400


class Stopped(Exception):
    """Ctrl-C or SIGTERM: stop everything and leave."""


def _scrape_address(host: str, port: int) -> str:
    """Where this machine's Prometheus reaches a server bound to ``host:port``."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - a bind address read, not one bound to
        return f"127.0.0.1:{port}"
    if host == "::":
        return f"[::1]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stop_on_signal(signum, frame):
    raise Stopped(signal.Signals(signum).name)


@dataclass
class Child:
    """A process the demo started, in its own process group, logging to ``log_path``."""

    name: str
    process: subprocess.Popen
    log_path: Path
    _log: BinaryIO = field(repr=False)
    # How it was started, to start it again.
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    started: float = field(default_factory=time.monotonic)
    restarts: int = 0
    # Quick stops in a row (stopped within STEADY_AFTER_S of its start).
    quick_stops: int = 0

    def stop(self) -> None:
        """Ask the child to stop (SIGTERM: the worker finishes its tasks, runserver stops its
        reloader), kill it after ``STOP_TIMEOUT_S``, then kill whatever it left behind in
        its process group. Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_S)
        # Whatever the child started and left behind (or the child itself) goes too.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        if not self._log.closed:
            self._log.close()

    def log_tail(self, chars: int = 3000) -> str:
        with suppress(OSError):
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        return ""


def _listener(port: int) -> str | None:
    """Who listens on 127.0.0.1:``port``, in words; ``None`` when the port is free."""
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return None
    who = "another process"
    with suppress(OSError, subprocess.SubprocessError):
        listening = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["ss", "-Hltnp", f"sport = :{port}"],  # noqa: S607 - iproute2's ss, from PATH
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
        found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', listening)
        if found:
            who = f"{found.group(1)} (pid {found.group(2)})"
    return who


class Command(BaseCommand):
    help = (
        "Run the demo: a local Prometheus over backfilled demo GPU history, a Celery worker "
        "with beat, and the web server; Ctrl-C stops them all. Migrate and seed_demo first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Where the web server listens.")
        parser.add_argument("--port", type=int, default=8000, help="The web server's port.")
        parser.add_argument(
            "--days",
            type=int,
            default=scenario.HISTORY_DAYS,
            help="Days of demo history to write (the first time) and to pull into the ledger.",
        )
        parser.add_argument(
            "--rebuild-history",
            action="store_true",
            help="Write the demo history again even if var/prometheus already holds some.",
        )
        parser.add_argument(
            "--worker-concurrency",
            type=int,
            default=3,
            help="Celery worker processes: jobs run one per process, the periodic pulls "
            "need one too.",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.JOBS_METRICS_PORT or DEFAULT_METRICS_PORT,
            help="Where the worker serves portal_job_gpu_seconds_total for Prometheus "
            "(JOBS_METRICS_PORT, else %(default)s).",
        )
        parser.add_argument(
            "--identity-provider-port",
            type=int,
            default=DEFAULT_IDENTITY_PROVIDER_PORT,
            help="Where the demo's company identity provider (OpenID Connect) listens; 0 "
            "runs the demo with passwords only.",
        )
        parser.add_argument(
            "--scrape-interval",
            default="15s",
            help="How often the demo's Prometheus scrapes the worker (a Prometheus duration).",
        )

    def handle(
        self,
        *args,
        host,
        port,
        days,
        rebuild_history,
        worker_concurrency,
        metrics_port,
        scrape_interval,
        identity_provider_port,
        **options,
    ):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if not 0 < metrics_port < 65536:
            raise CommandError("--metrics-port must be a TCP port (1 to 65535).")
        var_dir = Path(settings.VAR_DIR)
        log_dir = var_dir / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        url = f"http://{host}:{port}"
        prometheus_port = self._local_prometheus_port()
        self._check_free(port, f"the web server ({url})", "give it another: make demo PORT=8001")
        self._check_free(
            metrics_port,
            "the worker's job metrics",
            "give it another: make demo DEMO_ARGS=--metrics-port=9818",
        )
        pool_port = metrics_port + 1
        if prometheus_port is not None:
            self._check_free(
                pool_port,
                "the demo worker pool's pod metrics (metrics port + 1)",
                "give the metrics another port: make demo DEMO_ARGS=--metrics-port=9818",
            )
        if identity_provider_port:
            self._check_free(
                identity_provider_port,
                "the demo's identity provider",
                "give it another: make demo DEMO_ARGS=--identity-provider-port=9401, or "
                "run without it: DEMO_ARGS=--identity-provider-port=0",
            )
        self._media_tools()
        queues = self._queues()

        children: list[Child] = []
        prometheus = None
        previous = {
            sig: signal.signal(sig, _stop_on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if prometheus_port is not None:
                # What kube-state-metrics would say of the worker's pods (its allocation).
                scenario.demo_worker_pool_exporter_start(
                    port=pool_port, gpus_per_class=worker_concurrency
                )
                prometheus = self._start_prometheus(
                    var_dir / "prometheus",
                    prometheus_port,
                    log_dir,
                    days,
                    rebuild_history,
                    scrape_targets=[f"127.0.0.1:{metrics_port}", f"127.0.0.1:{pool_port}"],
                    web_targets=[_scrape_address(host, port)],
                    scrape_interval=scrape_interval,
                )
            self._pull(days)
            worker = ["-m", "celery", "-A", "portal", "worker", "--loglevel=INFO"]
            worker += [f"--concurrency={worker_concurrency}", "-Q", ",".join(queues)]
            worker_env = {
                "JOBS_METRICS_PORT": str(metrics_port),
                "JOBS_METRICS_ADDR": "127.0.0.1",
                # The worker runs in the demo's worker pool: its jobs are billed to the
                # departments that submit them.
                "JOBS_WORKER_NAMESPACE": scenario.WORKER_POOL_NAMESPACE,
                # Jobs run `python -m demo.programs...` in their own folders: find the portal
                # even where it is not installed into the interpreter.
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(settings.BASE_DIR), os.environ.get("PYTHONPATH")) if p
                ),
            }
            served = self._served_env(host, var_dir)
            if identity_provider_port:
                provider, provider_env = self._start_identity_provider(
                    var_dir, log_dir, identity_provider_port, url
                )
                children.append(provider)
                served.update(provider_env)
            self._collect_static(served)
            children.append(
                self._spawn(
                    "worker", [sys.executable, *worker], log_dir, env={**served, **worker_env}
                )
            )
            beat = ["-m", "celery", "-A", "portal", "beat", "--loglevel=INFO"]
            children.append(self._spawn("beat", [sys.executable, *beat], log_dir, env=served))
            bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            web = ["-m", "gunicorn", "portal.wsgi:application", "--bind", bind]
            # Its /metrics right whatever the number of workers (a multiprocess directory of
            # its own, var/prometheus-multiproc/web).
            web += ["-c", str(Path(settings.BASE_DIR) / "portal" / "gunicorn.conf.py")]
            # One process (the rate-limit counters live in its memory), threads for the
            # pages and downloads that overlap; a long PDF or XLSX may take a while.
            web += ["--workers", "1", "--threads", "8", "--timeout", "120"]
            web += ["--access-logfile", "-"]
            children.append(self._spawn("web", [sys.executable, *web], log_dir, env=served))
            self._wait_until_answers(f"{url}/healthz", children)
            self._banner(
                url,
                prometheus,
                log_dir,
                metrics_port=metrics_port,
                queues=queues,
                identity_provider=served.get("OIDC_ISSUER"),
            )
            purged = time.monotonic()
            while True:
                for i, child in enumerate(children):
                    if child.process.poll() is not None:
                        children[i] = self._restart(child)
                if prometheus is not None and prometheus.process.poll() is not None:
                    prometheus = self._restart_prometheus(prometheus)
                if time.monotonic() - purged > PURGE_EVERY_S:
                    purged = time.monotonic()
                    self._purge_broker()
                time.sleep(0.5)
        except Stopped as stop:
            self.stdout.write(f"\n{stop}: stopping the demo.")
        finally:
            # A second Ctrl-C must not leave half of the children running.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            for child in reversed(children):
                child.stop()
            if prometheus is not None:
                prometheus.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("The demo has stopped.")

    # --- serving as production does -------------------------------------------------------

    def _served_env(self, host: str, var_dir: Path) -> dict[str, str]:
        """The environment of the demo's worker, beat and web server: DEBUG off, as in
        production (styled error pages rather than Django's debug pages, static files
        compressed and cached by WhiteNoise, no query log growing in long-lived processes),
        over plain HTTP on this machine. The secret key is made once and kept in var/."""
        key_file = var_dir / "secret_key"
        if not key_file.exists():
            key_file.touch(mode=0o600)
            key_file.write_text(get_random_secret_key(), encoding="utf-8")
        hosts = "*" if host in ("0.0.0.0", "::") else f"{host},localhost,127.0.0.1,[::1]"  # noqa: S104
        return {
            "DEBUG": "0",
            "SECRET_KEY": key_file.read_text(encoding="utf-8").strip(),
            "ALLOWED_HOSTS": hosts,
            # Plain HTTP on this machine: no redirect to HTTPS, cookies over HTTP, no HSTS.
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "STATIC_ROOT": str(var_dir / "static"),
        }

    def _start_identity_provider(
        self, var_dir: Path, log_dir: Path, port: int, url: str
    ) -> tuple[Child, dict[str, str]]:
        """The company's identity provider, as the demo plays it: Canaille
        (demo/identity_provider.py) on localhost:``port`` with the demo's people in their
        groups; returns it and the OIDC settings that point the portal at it."""
        data = var_dir / "identity-provider"
        data.mkdir(parents=True, exist_ok=True)
        secret_file = data / "client_secret"
        if not secret_file.exists():
            secret_file.touch(mode=0o600)
            secret_file.write_text(get_random_secret_key(), encoding="utf-8")
        secret = secret_file.read_text(encoding="utf-8").strip()
        people = data / "people.json"
        people.write_text(json.dumps(scenario.provider_people(), indent=2), encoding="utf-8")
        args = [sys.executable, "-m", "demo.identity_provider", "--port", str(port)]
        args += ["--data", str(data), "--people", str(people), "--portal-url", url]
        if urlsplit(url).hostname != "localhost":
            args += ["--portal-url", url.replace(urlsplit(url).hostname, "localhost", 1)]
        child = self._spawn(
            "identity-provider", args, log_dir, env={"OIDC_RP_CLIENT_SECRET": secret}
        )
        issuer = f"http://localhost:{port}"
        try:
            self._wait_until_answers(f"{issuer}/.well-known/openid-configuration", [child])
        except CommandError:
            child.stop()
            raise
        return child, {
            "OIDC_ISSUER": issuer,
            "OIDC_RP_CLIENT_ID": "gpu-portal",
            "OIDC_RP_CLIENT_SECRET": secret,
            "OIDC_PROVIDER_NAME": "the company account",
            # Canaille sends no preferred_username; its subject is the user name.
            "OIDC_USERNAME_CLAIM": "sub",
        }

    def _collect_static(self, env: dict[str, str]) -> None:
        """collectstatic with DEBUG off: hashed names (cached for a year) and gzip copies
        (plotly.js goes over the wire as 372 KB instead of 1.1 MB)."""
        self.stdout.write("Collecting static files (compressed, cached) …")
        started = time.monotonic()
        collected = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            cwd=settings.BASE_DIR,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        if collected.returncode != 0:
            raise CommandError(f"collectstatic failed:\n{collected.stderr[-3000:]}")
        self.stdout.write(f"  in {time.monotonic() - started:.1f} s.")

    # --- keeping the children up ----------------------------------------------------------

    def _restart(self, child: Child) -> Child:
        """Start a child that stopped again, after a pause when it keeps stopping soon after
        its start; say why it stopped and when it comes back."""
        code = child.process.returncode
        ran_s = time.monotonic() - child.started
        quick = child.quick_stops + 1 if ran_s < STEADY_AFTER_S else 0
        pause = RESTART_PAUSES_S[min(quick, len(RESTART_PAUSES_S)) - 1] if quick else 0
        child.stop()
        self.stderr.write(
            self.style.WARNING(
                f"{time.strftime('%H:%M:%S')} The {child.name} stopped (exit {code}) after "
                f"{ran_s:.0f} s; starting it again"
                + (f" in {pause} s" if pause else "")
                + f" (restart {child.restarts + 1}). Its log {child.log_path} ends with:\n"
                + child.log_tail(1500)
            )
        )
        time.sleep(pause)
        again = self._spawn(child.name, child.args, child.log_path.parent, env=child.env)
        again.restarts, again.quick_stops = child.restarts + 1, quick
        return again

    def _restart_prometheus(self, prometheus):
        """Start the demo's Prometheus again on its port, data and config; a failed start
        is said and tried again on the next round, a few seconds later."""
        code = prometheus.process.returncode
        self.stderr.write(
            self.style.WARNING(
                f"{time.strftime('%H:%M:%S')} Prometheus stopped (exit {code}); starting it "
                f"again. Its log {prometheus.log_path} ends with:\n{prometheus.log_tail(1500)}"
            )
        )
        prometheus.stop()
        time.sleep(RESTART_PAUSES_S[1])
        try:
            return local_prometheus.start(
                prometheus.data_dir,
                port=urlsplit(prometheus.url).port,
                config_path=prometheus.data_dir.with_name("prometheus.yml"),
                lookback_delta=scenario.HISTORY_LOOKBACK_DELTA,
                log_path=prometheus.log_path,
            )
        except RuntimeError as failed:
            self.stderr.write(f"Prometheus did not start again: {failed}")
            return prometheus

    def _purge_broker(self) -> None:
        """Delete the rows of messages already taken from the embedded broker."""
        try:
            broker.purge_taken(settings.CELERY_BROKER_URL)
        except sqlite3.Error as failed:
            self.stderr.write(f"Could not purge taken messages from the broker: {failed}")

    # --- steps -----------------------------------------------------------------------------

    def _local_prometheus_port(self) -> int | None:
        """The port the demo's own Prometheus takes, from PROMETHEUS_URL; ``None`` when
        PROMETHEUS_URL names another machine, whose Prometheus the demo then reads as is."""
        parts = urlsplit(settings.PROMETHEUS_URL)
        if parts.hostname not in LOOPBACK:
            self.stdout.write(
                f"PROMETHEUS_URL is {settings.PROMETHEUS_URL}: reading that Prometheus; no "
                "local one and no demo history."
            )
            return None
        self._prometheus_binaries()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._check_free(
            port,
            f"the demo's Prometheus (PROMETHEUS_URL={settings.PROMETHEUS_URL})",
            "if it is the system service of the Debian package, stop it "
            "(sudo systemctl disable --now prometheus), or give the demo another port: "
            "PROMETHEUS_URL=http://127.0.0.1:9091 make demo",
        )
        return port

    def _prometheus_binaries(self) -> None:
        """Make sure prometheus and promtool are here: install the Debian package where we
        can (root or password-less sudo, with apt-get), else say how to."""
        try:
            local_prometheus.binaries()
            return
        except local_prometheus.PrometheusNotInstalled as missing:
            chosen = os.environ.get("PROMETHEUS_BIN") or os.environ.get("PROMTOOL_BIN")
            prefix = None if chosen else system_packages.install_prefix()
            if prefix is None:
                raise CommandError(
                    f"{missing}\nThe demo runs its own Prometheus over demo history and "
                    "could not install it here (it installs the Debian package only with "
                    "apt-get as root or with password-less sudo, and only when "
                    "PROMETHEUS_BIN/PROMTOOL_BIN are not set). Install it, then run make demo "
                    "again: sudo apt-get install prometheus (Debian/Ubuntu), or unpack the "
                    "tarball from https://prometheus.io/download/ and set "
                    "PROMETHEUS_BIN=/path/to/prometheus PROMTOOL_BIN=/path/to/promtool."
                ) from None
        failed = system_packages.apt_install(
            prefix, ["prometheus"], "Prometheus is missing", self.stdout.write
        )
        if failed:
            raise CommandError(
                f"{failed} failed; install the prometheus package by hand, or "
                "set PROMETHEUS_BIN and PROMTOOL_BIN (see https://prometheus.io/download/)."
            )
        try:
            local_prometheus.binaries()
        except local_prometheus.PrometheusNotInstalled as missing:
            raise CommandError(str(missing)) from None

    def _media_tools(self) -> None:
        """espeak-ng and ffmpeg, which the speech, video and lip-sync demo kinds run:
        installed with apt-get where we can; otherwise the demo says how and goes on (the
        cpu-load kind needs neither)."""
        still = system_packages.ensure(system_packages.NEEDS["demo"], self.stdout.write)
        if still:
            self.stderr.write(
                self.style.WARNING(
                    "The speech-synthesis, video-render and lipsync-render demo jobs will "
                    f"fail until {' and '.join(still)} are installed; cpu-load jobs run "
                    "without them."
                )
            )

    def _queues(self) -> list[str]:
        """The default queue (metering and the other periodic tasks) and the jobs' queue
        of every GPU class for every tier, so any job the demo admits finds its worker."""
        classes = list(GpuClass.objects.order_by("slug"))
        connections.close_all()
        if not classes:
            self.stderr.write(
                self.style.WARNING("No GPU classes: run seed_demo first, or no job will run.")
            )
        return ["celery", *(gpu.queue_for(tier) for gpu in classes for tier in Tier.values)]

    def _check_free(self, port: int, what: str, remedy: str) -> None:
        who = _listener(port)
        if who is not None:
            raise CommandError(
                f"Port {port}, for {what}, is already taken by {who}. Stop it, or {remedy}."
            )

    def _start_prometheus(
        self,
        data_dir,
        port,
        log_dir,
        days,
        rebuild,
        *,
        scrape_targets,
        web_targets,
        scrape_interval,
    ):
        self.stdout.write(f"Demo GPU history in {data_dir} (written on the first start only) …")
        written = scenario.demo_history_ensure(data_dir=data_dir, days=days, rebuild=rebuild)
        if written is None:
            first, last = scenario.demo_history_span(data_dir)
            self.stdout.write(
                f"  kept from an earlier start ({first:%Y-%m-%d} to {last:%Y-%m-%d}); "
                "--rebuild-history writes it again."
            )
        else:
            self.stdout.write(
                f"  written: {written.samples:,} samples from "
                f"{written.start:%Y-%m-%d %H:%M} to {written.end:%Y-%m-%d %H:%M} UTC, generated "
                f"in {written.write_s:.1f} s, backfilled by promtool in {written.backfill_s:.1f} s."
            )
        config = data_dir.with_name("prometheus.yml")
        local_prometheus.write_config(
            config,
            scrape_targets=scrape_targets,
            web_targets=web_targets,
            web_token=settings.METRICS_TOKEN,
            scrape_interval=scrape_interval,
        )
        started = time.monotonic()
        server = local_prometheus.start(
            data_dir,
            port=port,
            config_path=config,
            lookback_delta=scenario.HISTORY_LOOKBACK_DELTA,
            log_path=log_dir / "prometheus.log",
        )
        self.stdout.write(
            f"Prometheus ready at {server.url} in {time.monotonic() - started:.1f} s."
        )
        return server

    def _pull(self, days: int) -> None:
        """The ledger of the last ``days``, pulled once now so the charts have data at once;
        idempotent, so starting the demo again just pulls the same hours again."""
        end = dt.datetime.now(dt.UTC)
        start = end - dt.timedelta(days=days)
        self.stdout.write(f"Pulling {days} days of GPU usage into the ledger …")
        started = time.monotonic()
        try:
            window = ["--start", start.isoformat(), "--end", end.isoformat()]
            call_command(
                "pull_usage", *window, "--no-progress", stdout=self.stdout, stderr=self.stderr
            )
            self._statements(start, end)
        finally:
            # The worker and the web server write the same SQLite file from now on.
            connections.close_all()
        self.stdout.write(f"  pulled in {time.monotonic() - started:.1f} s.")

    def _statements(self, start: dt.datetime, end: dt.datetime) -> None:
        """Price the months of the history: past months past their grace period are
        finalized (as the hourly task would), the current month stays a draft."""
        month, months = calendar.month_of(start), []
        while month <= calendar.month_of(end):
            months.append(month)
            month = calendar.next_month(month)
        billing.periods_refresh(months=months)
        finalized = billing.statements_finalize_due()
        self.stdout.write(f"  priced {len(months)} months into statements ({finalized} finalized).")

    def _spawn(
        self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> Child:
        log_path = log_dir / f"{name}.log"
        log = log_path.open("ab")
        try:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                args,
                cwd=settings.BASE_DIR,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C reaches only us, and we stop it with all it
                # started (the worker's pool and beat, runserver's reloader).
                start_new_session=True,
            )
        except BaseException:
            log.close()
            raise
        return Child(name=name, process=process, log_path=log_path, _log=log, args=args, env=env)

    def _wait_until_answers(self, address: str, children: list[Child]) -> None:
        """Until ``address`` answers 200; a child that exits meanwhile, or the last child
        still silent after ``READY_TIMEOUT_S``, stops the demo with the end of its log."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with (
                suppress(OSError),
                urllib.request.urlopen(address, timeout=2) as answer,  # noqa: S310
            ):
                if answer.status == 200:
                    return
            for child in children:
                if child.process.poll() is not None:
                    raise CommandError(
                        f"The {child.name} exited with {child.process.returncode} while "
                        f"starting; its log {child.log_path} ends with:\n{child.log_tail()}"
                    )
            if time.monotonic() > deadline:
                last = children[-1]
                raise CommandError(
                    f"The {last.name} did not answer {address} within {READY_TIMEOUT_S} s; "
                    f"its log {last.log_path} ends with:\n{last.log_tail()}"
                )
            time.sleep(0.2)

    def _banner(
        self,
        url: str,
        prometheus,
        log_dir: Path,
        *,
        metrics_port: int,
        queues: list[str],
        identity_provider: str | None,
    ) -> None:
        out = self.stdout
        out.write(self.style.SUCCESS(f"\nThe GPU chargeback portal is running at {url}/"))
        out.write(f"  Admin: {url}/admin/   API docs: {url}/api/docs/")
        if prometheus is not None:
            out.write(
                f"  Prometheus (demo history, scraping the worker and {url}/metrics): "
                f"{prometheus.url}"
            )
        out.write(
            f"  Worker job metrics: http://127.0.0.1:{metrics_port}/metrics; queues: "
            f"{', '.join(queues)}"
        )
        out.write(
            "  Submit a job (demo kinds: cpu-load, speech-synthesis, video-render, "
            f"lipsync-render) with POST {url}/api/v1/jobs/"
        )
        out.write(f"\n  Every demo user's password is {scenario.DEMO_PASSWORD}")
        logins = scenario.demo_logins()
        width = max(len(login.username) for login in logins)
        for login in logins:
            out.write(f"    {login.username:<{width}}  {login.role:<8}  {login.department}")
        if identity_provider:
            out.write(
                "\n  Or sign in with the company account (the demo's identity provider at "
                f"{identity_provider}; its groups become roles by Admin → Role mappings), "
                "same password:"
            )
            width = max(len(name) for name in scenario.PROVIDER_PEOPLE)
            for username, (_, _, groups) in scenario.PROVIDER_PEOPLE.items():
                out.write(f"    {username:<{width}}  groups: {', '.join(groups)}")
        out.write(f"\n  Logs: {log_dir}/{{prometheus,identity-provider,worker,beat,web}}.log")
        out.write("  Press Ctrl-C to stop everything.\n")
