"""A higher SLA priority is served first on every broker (Redis serves 0 first)."""

import pytest

from jobs import dispatch


@pytest.mark.parametrize(
    ("broker", "sla_priority", "message_priority"),
    [
        ("redis://127.0.0.1:6379/0", 9, 0),  # Redis serves 0 first
        ("redis://127.0.0.1:6379/0", 2, 7),
        ("amqp://guest:guest@127.0.0.1:5672//", 9, 9),  # RabbitMQ serves 9 first
    ],
)
def test_higher_sla_priority_is_served_first_on_every_broker(
    broker, sla_priority, message_priority
):
    from portal.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = broker
    try:
        assert dispatch.broker_priority(sla_priority) == message_priority
    finally:
        app.conf.broker_url = previous
