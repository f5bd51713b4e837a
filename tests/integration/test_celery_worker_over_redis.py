"""A real `celery worker` process, configured by portal/celery.py from the environment,
consumes from a real Redis broker."""

import uuid
from urllib.parse import urlsplit

import pytest
from celery import Celery

from tests.integration.conftest import portal_env, running

pytestmark = pytest.mark.integration


def test_a_worker_started_from_the_portal_app_answers_over_redis(redis_url, tmp_path):
    node = f"ci-{uuid.uuid4().hex[:8]}@localhost"
    queue = f"probe-{node}"
    # A bare client on the same broker: Celery's control client publishes through its
    # app's own broker, so the probe must not be the portal app (whose broker is the
    # test process's setting).
    probe = Celery("probe", broker=redis_url)

    def answers() -> bool:
        return any(node in reply for reply in probe.control.ping(destination=[node], timeout=0.5))

    try:
        with running(
            [
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--pool=solo",
                "-n",
                node,
                "-Q",
                queue,
                "--without-mingle",
                "--without-gossip",
            ],
            env=portal_env(CELERY_BROKER_URL=redis_url, PORTAL_VAR_DIR=str(tmp_path)),
            ready=answers,
            log=tmp_path / "worker.log",
        ):
            inspect = probe.control.inspect(destination=[node], timeout=2)
            stats = inspect.stats()[node]
            assert (stats["broker"]["transport"], stats["broker"]["hostname"]) == (
                "redis",
                urlsplit(redis_url).hostname,
            )
            assert [q["name"] for q in inspect.active_queues()[node]] == [queue]
    finally:
        probe.close()
