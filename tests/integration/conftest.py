"""Real processes for integration tests: each is stopped when its test ends, pass or fail."""

import contextlib
import dataclasses
import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_prometheus, require_service

ROOT = Path(__file__).resolve().parents[2]


# The distribution's Chromium, which the browser tests drive (Playwright downloads nothing).
CHROMIUM = os.environ.get("PORTAL_TEST_CHROMIUM", "/usr/bin/chromium")


def require_chromium() -> None:
    """Chromium and Playwright are here, or the test skips (fails in CI) saying how."""
    require_service(
        "Chromium",
        shutil.which(CHROMIUM) is not None,
        f"no browser at {CHROMIUM}; apt-get install chromium (or set PORTAL_TEST_CHROMIUM)",
    )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_service("Playwright", False, "pip install -e '.[dev]' (playwright>=1.45)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_pair() -> int:
    """A port that is free, and the next one too (the demo serves its worker's metrics on
    one and the worker pool's on the next), below Linux's ephemeral range (32768-60999),
    where the outgoing connections of tests running alongside would take ports too."""
    for port in random.Random().sample(range(20000, 32000, 2), 200):  # noqa: S311 - no secret
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two free ports in a row between 20000 and 32000")


def portal_env(**overrides: str) -> dict[str, str]:
    """The environment of a portal process started by a test."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONUNBUFFERED": "1"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@contextlib.contextmanager
def running(
    args: list[str],
    *,
    env: dict[str, str],
    ready: Callable[[], bool],
    log: Path,
    timeout_s: float = 60,
    new_session: bool = False,
) -> Iterator[subprocess.Popen]:
    """Start ``python args...``, wait until ``ready()``, and stop it however the test ends.

    ``new_session``: the process leads its own process group (a test may kill the whole
    group), and whatever is left of the group is killed when the test ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if process.poll() is not None:
                    pytest.fail(
                        f"{args[0:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{args[0:3]} not ready after {timeout_s} s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10 if new_session else 20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if new_session:  # children the leader left behind (a prefork pool)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Worker:
    node: str
    queue: str
    client: object  # a bare Celery app on the worker's broker, to send tasks and inspect
    log: Path
    process: subprocess.Popen | None = None  # leads its own process group

    def wait_idle(self, timeout_s: float = 30) -> None:
        """Until the worker holds no task: what a task does after the test saw its effect
        (a finished job releases its department's waiting jobs in a transaction of its
        own) must not race the flush of the test database, or the two may deadlock."""
        deadline = time.monotonic() + timeout_s
        while True:
            replies = self.client.control.inspect(destination=[self.node], timeout=1).active()
            if replies is not None and not replies.get(self.node, ["no reply"]):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{self.node} still busy after {timeout_s} s: {replies}")
            time.sleep(0.1)


@contextlib.contextmanager
def celery_worker(
    *,
    broker_url: str,
    tmp_path: Path,
    queues: list[str] | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    log_name: str = "worker.log",
    **env: str,
) -> Iterator[Worker]:
    """A ``celery worker`` process of the portal's app on its own queue (or on ``queues``),
    ready to work; it leads its own process group, and the group is stopped however the
    test ends."""
    from celery import Celery

    node = f"test-{uuid.uuid4().hex[:8]}@localhost"
    # A bare client on the same broker: Celery's control client publishes through its
    # app's own broker, so it must not be the portal app (whose broker is the test
    # process's setting). Nor may it become the current app: ``shared_task`` tasks (what
    # the portal's code sends) resolve against the current app, so they would be sent
    # through this client's broker rather than the portal's.
    client = Celery("probe", broker=broker_url, set_as_current=False)

    def answers() -> bool:
        return any(node in reply for reply in client.control.ping(destination=[node], timeout=0.5))

    queue = ",".join(queues) if queues else f"queue-{node}"
    args = ["-m", "celery", "-A", "portal", "worker", f"--pool={pool}", "-n", node, "-Q", queue]
    if pool == "prefork":
        args.append(f"--concurrency={concurrency}")
    log = tmp_path / log_name
    try:
        with running(
            [*args, "--without-mingle", "--without-gossip"],
            env=portal_env(CELERY_BROKER_URL=broker_url, PORTAL_VAR_DIR=str(tmp_path), **env),
            ready=answers,
            log=log,
            new_session=True,
        ) as process:
            yield Worker(node=node, queue=queue, client=client, log=log, process=process)
    finally:
        client.close()


def database_quiet(timeout_s: float = 30) -> None:
    """Until no other session on the test database is inside a transaction, so that the
    flush after a transactional test cannot deadlock with a worker's last statements."""
    from django.db import connection

    deadline = time.monotonic() + timeout_s
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            )
            (busy,) = cursor.fetchone()
        if not busy:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{busy} other sessions still in a transaction after {timeout_s} s")
        time.sleep(0.1)


def database_url() -> str:
    """The test database, as a ``DATABASE_URL`` for a process a test starts."""
    from django.db import connection

    database = connection.settings_dict
    return (
        f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


@contextlib.contextmanager
def portal_producer(broker_url: str) -> Iterator[None]:
    """The test process's portal Celery app (what :mod:`jobs.dispatch` publishes through)
    sends to ``broker_url`` inside the block; its own broker is restored afterwards."""
    from portal.celery import app

    def forget_connections() -> None:
        # Dropped, not closed: kombu keeps one pool per broker for the whole process, and
        # other apps on the same broker (a worker's probe client) share it.
        app._pool = None
        app.amqp._producer_pool = None

    saved_env = os.environ.pop("CELERY_BROKER_URL", None)
    saved = {
        "broker_url": app.conf.broker_url,
        "broker_transport_options": app.conf.broker_transport_options,
    }
    forget_connections()
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = {}
    try:
        yield
    finally:
        forget_connections()
        app.conf.update(saved)
        if saved_env is not None:
            os.environ["CELERY_BROKER_URL"] = saved_env


def broker_queues_delete(broker_url: str, queue_prefix: str) -> None:
    """Delete a Redis broker's queues named ``<queue_prefix>.*``, their messages and
    kombu's bindings of them."""
    import redis

    broker = redis.Redis.from_url(broker_url)
    for key in broker.scan_iter(match=f"*{queue_prefix}.*"):
        broker.delete(key)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis database for the tests (TEST_REDIS_URL, by default db 15 on 127.0.0.1)."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        available = True
    except redis.RedisError:
        available = False
    require_service("Redis", available, f"nothing answers at {url}; set TEST_REDIS_URL")
    return url


# --- A real Prometheus over synthetic GPU history -------------------------------------------

A100 = "NVIDIA-A100-SXM4-80GB"
T4 = "Tesla-T4"
MI300 = "AMD-Instinct-MI300X"  # no GPU class matches it: "Unknown model"


@dataclasses.dataclass(frozen=True)
class History:
    """What the session's Prometheus holds, and where it answers."""

    url: str
    blocks: Path  # the backfilled blocks, pristine, for tests that run their own server
    day: dt.datetime  # midnight UTC of the first day of history
    pods: tuple
    counters: tuple
    latencies: tuple

    def at(self, hours: float) -> dt.datetime:
        return self.day + dt.timedelta(hours=hours)


def _history_pods(day: dt.datetime) -> list:
    from demo.synthetic import Pod

    def at(hours: float) -> dt.datetime:
        return day + dt.timedelta(hours=hours)

    return [
        # 2 GPUs for 20 minutes: 0.667 GPU-hours, not 2.
        Pod("dept-marketing", "render-short", A100, 2, at(10), at(10 + 20 / 60)),
        # Crosses two hour boundaries: 0.25, 1, 0.25.
        Pod("dept-marketing", "render-cross", T4, 1, at(10.75), at(12.25)),
        # Starts and stops inside one hour, off the minute.
        Pod("dept-marketing", 'render-"quoted"', T4, 3, at(13 + 7.5 / 60), at(13 + 41.5 / 60)),
        Pod("dept-training", "assistant-train", A100, 4, at(8), at(32)),
        Pod("dept-training", "assistant-eval", MI300, 1, at(10), at(11)),
        # Nobody owns this namespace: "Unallocated".
        Pod("team-research", "notebook", T4, 1, at(9), at(11.5)),
        # A namespace label with a quote in it (seen through the DCGM exporter).
        Pod('weird"ns', "odd", T4, 1, at(20), at(21)),
    ]


def _history_counters(day: dt.datetime) -> list:
    """One busy GPU counted by a worker (1 GPU-second per second) from 09:00 to 13:00,
    restarted at 10:30 (the counter drops back to zero)."""
    from demo.synthetic import CounterSample

    samples, value = [], 0.0
    for step in range(0, 4 * 3600 + 1, 15):
        at = day + dt.timedelta(hours=9, seconds=step)
        if step == int(1.5 * 3600):
            value = 0.0
        samples.append(CounterSample("dept-marketing", "t4", "lipsync-render", at, value))
        value += 15
    return samples


def _history_latencies(day: dt.datetime) -> list:
    from demo.synthetic import LatencyProfile

    return [
        LatencyProfile(
            "dept-customer-service",
            day + dt.timedelta(hours=6),
            day + dt.timedelta(hours=18),
            requests_per_s=20,
            bucket_fractions={0.1: 0.5, 0.25: 0.9, 0.5: 0.96, 1.0: 1.0},
        )
    ]


@pytest.fixture(scope="session")
def prometheus_history(tmp_path_factory) -> Iterator[History]:
    """A real Prometheus (the distribution's binary) on 127.0.0.1 over two days of
    synthetic history backfilled with promtool, three days ago; stopped at session end."""
    from demo import local_prometheus, synthetic

    require_prometheus()

    root = tmp_path_factory.mktemp("prometheus")
    now = dt.datetime.now(dt.UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=3)
    pods, counters, latencies = (
        _history_pods(day),
        _history_counters(day),
        _history_latencies(day),
    )
    synthetic.write_openmetrics(
        root / "history.om", pods=pods, counters=counters, latencies=latencies
    )
    blocks = root / "blocks"
    local_prometheus.backfill(root / "history.om", blocks)
    data = root / "data"
    shutil.copytree(blocks, data)
    with local_prometheus.running(
        data, lookback_delta="31s", log_path=root / "prometheus.log"
    ) as server:
        yield History(
            url=server.url,
            blocks=blocks,
            day=day,
            pods=tuple(pods),
            counters=tuple(counters),
            latencies=tuple(latencies),
        )
