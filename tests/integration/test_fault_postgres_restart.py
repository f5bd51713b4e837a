"""PostgreSQL restarted while people submit jobs over the API: every failed submission is
answered with an error a person can act on (JSON, not a traceback or an HTML page), no job
row is half-written (each has its admission outcome, and the quota is never overrun),
retrying a failed submission with its idempotency key makes exactly one job, and
submissions succeed again as soon as the database is back.

The machine's shared PostgreSQL is never touched: the test runs a private server of its own
(``initdb`` into a temporary folder, on a free port), migrates it, serves the portal on it
with gunicorn, and stops the server twice while six clients submit: once with
``pg_ctl stop -m fast`` and once with ``-m immediate`` (a crash, recovered on start)."""

import contextlib
import dataclasses
import http.client
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.models import GenerationJob, JobState
from tests.conftest import require_service
from tests.integration.conftest import (
    ROOT,
    broker_queues_delete,
    free_port,
    portal_env,
    running,
)

pytestmark = pytest.mark.integration

SUBMITTERS = 6
CONCURRENT_LIMIT = 12  # the department's concurrent_jobs quota: the rest wait
DOWN_S = 1.5  # how long the database stays stopped each time
SUCCESSES_BETWEEN = 15  # submissions that must succeed before each stop, and after the last start
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def _server_binaries() -> Path | None:
    """The folder of the newest PostgreSQL server's ``initdb``, ``pg_ctl`` and ``postgres``
    (``PG_BIN_DIR`` first, then Debian's ``/usr/lib/postgresql/<version>/bin``, then PATH)."""
    folders = [Path(os.environ["PG_BIN_DIR"])] if os.environ.get("PG_BIN_DIR") else []
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    folders += sorted(
        versions,
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
        reverse=True,
    )
    if on_path := shutil.which("pg_ctl"):
        folders.append(Path(on_path).resolve().parent)
    return next((f for f in folders if all((f / name).is_file() for name in SERVER_BINARIES)), None)


def _as_server_owner(command: list[str]) -> list[str]:
    """``command`` run as the user ``postgres`` when the test runs as root (initdb and the
    server refuse root), through ``runuser`` or else ``su``; as is otherwise."""
    if os.geteuid() != 0:
        return command
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", "postgres", "--", *command]
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


@dataclasses.dataclass
class PrivatePostgres:
    """A PostgreSQL server of the test's own, on 127.0.0.1:``port``, its socket and data in
    ``root``."""

    bin: Path
    root: Path
    port: int

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            _as_server_owner([str(self.bin / name), *args]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed:\n{done.stdout}{done.stderr}{self.tail()}")
        return done

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    def initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.root / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        # fsync off: safe against a crash of the server process (what the test causes),
        # not of the machine; synchronous_commit stays on, so a commit that answered is kept.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.root / "data"),
            "-l", str(self.log), "-o", options,
        )  # fmt: skip

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.root / "data"))

    def is_running(self) -> bool:
        status = self._run("pg_ctl", "status", "-D", str(self.root / "data"), check=False)
        return status.returncode == 0


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh PostgreSQL server with a ``portal`` database, stopped and deleted however the
    test ends."""
    binaries = _server_binaries()
    require_service(
        "PostgreSQL server binaries",
        binaries is not None,
        "initdb, pg_ctl and postgres not found in /usr/lib/postgresql/*/bin or on PATH; "
        "install the `postgresql` package or set PG_BIN_DIR",
    )
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            require_service("PostgreSQL", False, "running as root and there is no user postgres")
    root = Path(tempfile.mkdtemp(prefix="portal-fault-pg-"))
    server = PrivatePostgres(bin=binaries, root=root, port=free_port())
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        server.initdb()
        server.start()
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=server.port, user="postgres", dbname="postgres"
        )
        try:
            connection.autocommit = True
            connection.cursor().execute("CREATE DATABASE portal")
        finally:
            connection.close()
        yield server
    finally:
        if server.is_running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _manage(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {command[0]} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


SEED = """
from decimal import Decimal
from departments.models import Enforcement, Membership, QuotaKind, Tier
from rest_framework.authtoken.models import Token
from tests import factories

marketing = factories.DepartmentFactory(slug="marketing")
factories.NamespaceFactory(name="dept-marketing", department=marketing)
gpu_class = factories.GpuClassFactory(slug="{slug}", queue_prefix="{prefix}", capacity_gpus=64)
factories.ServiceLevelFactory(department=marketing, tier=Tier.BATCH, gpu_classes=[gpu_class])
factories.JobKindFactory(slug="lipsync-render")
quota = factories.QuotaFactory(
    department=marketing, kind=QuotaKind.CONCURRENT_JOBS, limit=Decimal({limit}),
    enforcement=Enforcement.HARD_QUEUE,
)
manager = factories.UserFactory(username="mara")
factories.MembershipFactory(user=manager, department=marketing, role=Membership.Role.MANAGER)
print(Token.objects.create(user=manager).key, quota.pk)
"""


@dataclasses.dataclass(frozen=True)
class Answer:
    """One submission and what the portal answered (``status`` None: no HTTP answer)."""

    key: str
    asked_at: float
    status: int | None
    content_type: str
    body: str

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclasses.dataclass
class Outage:
    answers: list[Answer]
    retries: list[Answer]  # each failed submission sent again, same key, database up
    restarts: list[tuple[float, float]]  # (stopped at, started again at), monotonic
    rows: list[dict]  # every job row of the private database, after the outage
    quota_id: int
    swept: dict  # what the dispatch sweeper did once the broker and database were up
    undispatched_after_sweep: int


def _submit(port: int, token: str, key: str) -> Answer:
    body = json.dumps(
        {
            "department": "marketing",
            "kind": "lipsync-render",
            "tier": "batch",
            "params": {"seconds": 0, "text": key},
            "idempotency_key": key,
        }
    )
    asked_at = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(
            "POST",
            "/api/v1/jobs/",
            body=body,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return Answer(
            key,
            asked_at,
            response.status,
            response.getheader("Content-Type", ""),
            response.read().decode(errors="replace"),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Answer(key, asked_at, None, "", f"{type(exc).__name__}: {exc}")
    finally:
        connection.close()


def _job_rows(url: str) -> list[dict]:
    import psycopg2
    import psycopg2.extras

    table = GenerationJob._meta.db_table  # a model's table name, not input
    connection = psycopg2.connect(url.replace("postgres://", "postgresql://"))
    try:
        with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608
            return [dict(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


@pytest.fixture(scope="module")
def outage(redis_url, tmp_path_factory) -> Iterator[Outage]:
    """Run the whole scenario once; the tests below each check one promise of it."""
    tmp = tmp_path_factory.mktemp("postgres-restart")
    prefix = f"gpu.itest-{uuid.uuid4().hex[:8]}"
    try:
        with private_postgres() as server:
            env = portal_env(
                DATABASE_URL=server.url("portal"),
                CELERY_BROKER_URL=redis_url,
                DEBUG="0",  # what people see in production
                SECRET_KEY="fault-test-only-" + uuid.uuid4().hex,
                ALLOWED_HOSTS="127.0.0.1",
                SECURE_SSL_REDIRECT="0",
                EMAIL_URL="dummymail://",
                LOG_LEVEL="WARNING",
                PORTAL_VAR_DIR=str(tmp),
                JOBS_SUBMIT_RATE="100000/m",  # not what is tested here
            )
            _manage(env, "migrate", "--noinput", "-v", "0")
            seeded = SEED.format(
                slug=prefix.removeprefix("gpu."), prefix=prefix, limit=CONCURRENT_LIMIT
            )
            token, quota_id = _manage(env, "shell", "-c", seeded).splitlines()[-1].split()
            port = free_port()
            gunicorn = [
                "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "4", "--worker-class", "gthread",
                "--timeout", "60", "--graceful-timeout", "5",
            ]  # fmt: skip
            with running(
                gunicorn,
                env=env,
                ready=lambda: _healthy(port),
                log=tmp / "gunicorn.log",
                new_session=True,
            ):
                answers, restarts = _submit_through_restarts(server, port, token)
                failed = [a for a in answers if a.status not in (200, 201)]
                retries = [_submit(port, token, a.key) for a in failed]
            sweep = "import json, jobs.services as s; print(json.dumps(s.jobs_sweep()))"
            swept = json.loads(_manage(env, "shell", "-c", sweep).splitlines()[-1])
            rows = _job_rows(server.url("portal"))
            undispatched = sum(
                1 for r in rows if r["state"] == JobState.QUEUED and r["dispatched_at"] is None
            )
            yield Outage(
                answers=answers,
                retries=retries,
                restarts=restarts,
                rows=rows,
                quota_id=int(quota_id),
                swept=swept,
                undispatched_after_sweep=undispatched,
            )
    finally:
        broker_queues_delete(redis_url, prefix)


def _submit_through_restarts(server: PrivatePostgres, port: int, token: str):
    """Submitters post jobs, each with a key of its own, while the database is stopped and
    started twice; returns every answer and the (stop, start) times."""
    answers: list[Answer] = []
    lock = threading.Lock()
    stop = threading.Event()

    def submitter(number: int) -> None:
        sent = 0
        while not stop.is_set():
            answer = _submit(port, token, f"fault-{number}-{sent}")
            sent += 1
            with lock:
                answers.append(answer)
            if answer.status not in (200, 201):
                time.sleep(0.05)  # a client backs off a little on an error

    def successes_since(moment: float) -> int:
        with lock:
            return sum(1 for a in answers if a.asked_at >= moment and a.status in (200, 201))

    def wait_for_successes(moment: float) -> None:
        deadline = time.monotonic() + 30
        while successes_since(moment) < SUCCESSES_BETWEEN:
            assert time.monotonic() < deadline, "submissions do not succeed with the database up"
            time.sleep(0.05)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(SUBMITTERS)]
    for thread in threads:
        thread.start()
    restarts = []
    try:
        since = time.monotonic()
        for mode in ("fast", "immediate"):
            wait_for_successes(since)
            stopped_at = time.monotonic()
            server.stop(mode)
            time.sleep(DOWN_S)
            server.start()
            since = time.monotonic()
            restarts.append((stopped_at, since))
        wait_for_successes(since)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a submission never returned"
    return answers, restarts


def test_the_restarts_made_submissions_fail(outage):
    """The fault really happened: otherwise the other tests prove nothing."""
    failed = [a for a in outage.answers if a.status not in (200, 201)]
    assert len(outage.restarts) == 2
    assert failed, "no submission failed while PostgreSQL was down"


def test_a_submission_the_database_could_not_take_is_answered_with_a_json_error(outage):
    failed = [a for a in outage.answers if a.status not in (200, 201)]
    assert [a for a in failed if a.status is None] == [], "the server dropped connections"
    unclear = [
        (a.status, a.content_type, a.body[:200])
        for a in failed
        if a.status not in (500, 503)
        or not a.content_type.startswith("application/json")
        or not isinstance((a.json() or {}).get("detail"), str)
        or "Traceback" in a.body
    ]
    assert unclear == [], f"{len(unclear)} of {len(failed)} errors are not JSON: {unclear[:3]}"


def test_no_job_row_is_half_written(outage):
    rows = outage.rows
    sent = {a.key for a in outage.answers}
    assert rows and {r["idempotency_key"] for r in rows} <= sent
    # Each job has its admission outcome, written with it in one INSERT.
    assert {r["state"] for r in rows} == {JobState.QUEUED, JobState.WAITING}
    for row in rows:
        if row["state"] == JobState.QUEUED:
            assert row["admitted_at"] and row["queued_at"], row
            assert row["gpu_hours_reserved"] > Decimal(0), row
            assert (row["reason"], row["blocking_quota_id"]) == ("", None), row
        else:
            assert row["admitted_at"] is None and row["reason"].startswith("Waiting "), row
            assert row["blocking_quota_id"] == outage.quota_id, row
    # The quota is full, never overrun, whatever the restarts interrupted.
    assert [r["state"] for r in rows].count(JobState.QUEUED) == CONCURRENT_LIMIT


def test_every_answered_job_is_in_the_database_as_answered(outage):
    by_key = {r["idempotency_key"]: r for r in outage.rows}
    created = [a for a in outage.answers if a.status == 201]
    assert created
    for answer in created:
        job = answer.json()
        row = by_key[answer.key]
        assert (str(row["id"]), row["state"]) == (job["id"], job["state"]), answer.key


def test_retrying_a_failed_submission_with_its_key_makes_exactly_one_job(outage):
    assert outage.retries
    assert {r.status for r in outage.retries} <= {200, 201}, [
        (r.status, r.body[:200]) for r in outage.retries if r.status not in (200, 201)
    ]
    by_key = {r["idempotency_key"]: r for r in outage.rows}
    for retry in outage.retries:
        assert retry.json()["id"] == str(by_key[retry.key]["id"])
    # One job per key sent: no submission was lost or made twice.
    assert len(outage.rows) == len({a.key for a in outage.answers})


def test_submissions_succeed_as_soon_as_the_database_is_back(outage):
    for _, started_at in outage.restarts:
        after = [a for a in outage.answers if a.asked_at >= started_at]
        assert len([a for a in after if a.status in (200, 201)]) >= SUCCESSES_BETWEEN
    # Asked after the last start, not one fails: stale connections are replaced at once.
    last_start = outage.restarts[-1][1]
    failed_after = [
        (a.status, a.body[:200])
        for a in outage.answers
        if a.asked_at >= last_start and a.status not in (200, 201)
    ]
    assert failed_after == []


def test_admitted_jobs_the_broker_was_not_told_about_are_sent_by_the_sweeper(outage):
    # Queued jobs whose dispatch could not be recorded while the database was down are
    # picked up by the sweeper; afterwards every queued job is on the broker.
    assert outage.undispatched_after_sweep == 0, outage.swept
