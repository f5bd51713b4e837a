"""An alert's webhook is delivered by a real Celery worker process over Redis: the
delivery made after commit reaches the worker, which posts it, signed, to a local
receiver and records the answer in PostgreSQL."""

import time

import pytest
from standardwebhooks.webhooks import Webhook

from billing import notifications
from billing.models import AlertChannel, Delivery
from tests.billing.receivers import http_receiver
from tests.factories import DepartmentFactory
from tests.integration.conftest import (
    broker_queues_delete,
    celery_worker,
    database_quiet,
    database_url,
    portal_producer,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_worker_delivers_the_alert_once(postgres, redis_url, tmp_path, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    marketing = DepartmentFactory(slug="marketing")
    with http_receiver(answers=[]) as receiver:
        channel = AlertChannel.objects.create(
            department=marketing, name="hook", kind="webhook", url=receiver.url
        )
        with (
            celery_worker(
                broker_url=redis_url,
                tmp_path=tmp_path,
                DATABASE_URL=database_url(),
                WEBHOOKS_ALLOW_PRIVATE="1",
            ) as worker,
            portal_producer(redis_url),
        ):
            settings.NOTIFICATIONS_QUEUE = worker.queue
            for _ in range(2):  # the same alert, twice
                notifications.notify(
                    department=marketing,
                    event_key="quota:7:2026-11:80",
                    subject="Budget at 80 %",
                    text="Marketing used 80 of 100 GPU-hours.",
                )
            deadline = time.monotonic() + 30
            while not Delivery.objects.filter(status="succeeded").exists():
                assert time.monotonic() < deadline, worker.log.read_text()[-3000:]
                time.sleep(0.2)
            worker.wait_idle()
        database_quiet()
    broker_queues_delete(redis_url, worker.queue)

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    (request,) = receiver.requests
    payload = Webhook(channel.secret).verify(request.body, request.headers)
    assert payload["data"]["event_key"] == "quota:7:2026-11:80"
    assert payload["data"]["department"]["slug"] == "marketing"
