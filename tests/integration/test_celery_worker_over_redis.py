"""A real `celery worker` process, configured by portal/celery.py from the environment,
consumes from a real Redis broker."""

from urllib.parse import urlsplit

import pytest

from tests.integration.conftest import celery_worker

pytestmark = pytest.mark.integration


def test_a_worker_started_from_the_portal_app_answers_over_redis(redis_url, tmp_path):
    with celery_worker(broker_url=redis_url, tmp_path=tmp_path) as worker:
        # The call returns as soon as the one worker named replies; the timeout is only how
        # long a busy machine may take to.
        inspect = worker.client.control.inspect(destination=[worker.node], timeout=10)
        stats = inspect.stats()[worker.node]
        assert (stats["broker"]["transport"], stats["broker"]["hostname"]) == (
            "redis",
            urlsplit(redis_url).hostname,
        )
        assert [q["name"] for q in inspect.active_queues()[worker.node]] == [worker.queue]
