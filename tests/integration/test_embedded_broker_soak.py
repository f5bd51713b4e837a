"""The embedded broker (portal/broker.py) under load: 20,000 messages, published by four
processes at once (as the web server, beat and the worker itself publish in the demo) while
a real Celery worker of the portal consumes them. None is lost, none runs twice, none
arrives torn, and the worker never dies. The figures go to
``$PORTAL_TEST_ARTIFACTS/broker-soak.json`` (default ``test-artifacts/``).

The bodies are 0 to 4 KB of quotes, backslashes, brackets, newlines and non-ASCII text, each
sent with its SHA-256: the task records whether the body it got still matches.

The worker takes up to 100 messages per process ahead (``--prefetch-multiplier 100``), so
that the run takes about two minutes rather than the ten it would at the demo's one message
per free process, which only waits longer between polls; the transport's path is the
same."""

import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from portal import broker
from tests.integration.conftest import ROOT, portal_env, running

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("embedded-broker-soak")]

MESSAGES, PRODUCERS = 20_000, 4
QUEUE = "soak"
ARTIFACTS = Path(os.environ.get("PORTAL_TEST_ARTIFACTS", "test-artifacts"))

PRODUCER = """
import hashlib, random, sys, time
import django
django.setup()
from portal.celery import app
first, count = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(first)
alphabet = 'ab "\\\\\\'é€\\n\\t{}[],:0'
started = time.monotonic()
with app.producer_or_acquire() as producer:
    for seq in range(first, first + count):
        body = ''.join(rng.choice(alphabet) for _ in range(rng.randrange(0, 4096)))
        digest = hashlib.sha256(body.encode()).hexdigest()
        app.send_task('soak.record', args=[seq, body, digest], queue='soak', producer=producer)
print(time.monotonic() - started)
"""


def test_twenty_thousand_messages_arrive_once_and_whole(tmp_path):
    url = broker.sqlite_url(tmp_path / "celery" / "broker.sqlite3")
    record = tmp_path / "record.txt"
    env = portal_env(
        CELERY_BROKER_URL=url,
        PORTAL_VAR_DIR=str(tmp_path),
        SOAK_RECORD_PATH=str(record),
        DATABASE_URL=None,
    )
    args = ["-m", "celery", "-A", "portal", "worker", "-I", "tests.integration.broker_soak_tasks"]
    args += ["-Q", QUEUE, "--pool=prefork", "--concurrency=2", "--prefetch-multiplier=100"]
    args += ["--without-mingle", "--without-gossip", "--loglevel=INFO"]
    log = tmp_path / "worker.log"
    with running(
        args, env=env, ready=lambda: b"ready." in log.read_bytes(), log=log, new_session=True
    ) as worker:
        started = time.monotonic()
        per_producer = MESSAGES // PRODUCERS
        producers = [
            subprocess.Popen(
                [sys.executable, "-c", PRODUCER, str(i * per_producer), str(per_producer)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for i in range(PRODUCERS)
        ]
        outputs = [p.communicate(timeout=600)[0].decode() for p in producers]
        assert all(p.returncode == 0 for p in producers), outputs
        published_s = time.monotonic() - started
        deadline = time.monotonic() + 600
        lines: list[str] = []
        while True:
            lines = record.read_text().splitlines() if record.exists() else []
            if len(lines) >= MESSAGES or time.monotonic() > deadline:
                break
            assert worker.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        consumed_s = time.monotonic() - started
        time.sleep(2)  # anything read twice would arrive now
        lines = record.read_text().splitlines()
        assert worker.poll() is None, f"the worker died:\n{log.read_text()[-3000:]}"

    runs = Counter(int(line.split()[0]) for line in lines)
    states = Counter(line.split()[1] for line in lines)
    lost = sorted(set(range(MESSAGES)) - set(runs))
    twice = sorted(seq for seq, n in runs.items() if n > 1)
    worker_log = log.read_text()
    figures = {
        "messages": MESSAGES,
        "producers": PRODUCERS,
        "published_s": round(published_s, 1),
        "consumed_s": round(consumed_s, 1),
        "published_per_s": round(MESSAGES / published_s),
        "consumed_per_s": round(MESSAGES / consumed_s),
        "runs": len(lines),
        "lost": len(lost),
        "run_twice": len(twice),
        "torn": states["torn"],
        "worker_errors": worker_log.count("ERROR"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "broker-soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(figures)
    assert not lost, f"{len(lost)} lost, the first {lost[:10]}"
    assert not twice, f"{len(twice)} ran twice, the first {twice[:10]}"
    assert states == {"whole": MESSAGES}, states
    assert "Traceback" not in worker_log and "ERROR" not in worker_log, worker_log[-3000:]
    # Every message was taken; kombu leaves the rows behind until they are purged.
    assert broker.purge_taken(url) == MESSAGES
    assert broker.purge_taken(url) == 0


def test_the_task_module_checks_what_it_is_given(tmp_path, monkeypatch):
    """The soak's own check can fail: a body that does not match its digest is 'torn'."""
    from tests.integration import broker_soak_tasks

    body = 'a "quoted" \\ body,\n' * 10
    digest = hashlib.sha256(body.encode()).hexdigest()
    monkeypatch.setenv("SOAK_RECORD_PATH", str(tmp_path / "record.txt"))
    broker_soak_tasks.record.run(1, body, digest)
    broker_soak_tasks.record.run(2, body[:-1], digest)
    recorded = (tmp_path / "record.txt").read_text().splitlines()
    assert [line.split()[:2] for line in recorded] == [["1", "whole"], ["2", "torn"]]
