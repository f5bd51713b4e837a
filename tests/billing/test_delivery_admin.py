"""The admin's actions on deliveries and statements go through the services: a failed
delivery is retried now, a finalized statement is re-sent; a channel's webhook URL is
checked when IT saves it."""

import datetime as dt

import pytest

from billing import services
from billing.models import AlertChannel, Delivery, Statement, StatementSending
from tests.billing.conftest import hour
from tests.billing.receivers import http_receiver

pytestmark = pytest.mark.usefixtures("tasks_run_at_once")


def test_retry_now_sends_a_failed_delivery_again(
    world, client, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    with http_receiver() as receiver:
        channel = AlertChannel.objects.create(
            department=world.marketing, name="hook", kind="webhook", url=receiver.url
        )
        delivery = Delivery.objects.create(
            channel=channel,
            event_key="quota:1",
            event_type="quota",
            subject="s",
            text="t",
            status="failed",
            attempts=5,
            last_error="HTTP 500",
        )
        client.force_login(world.user("it_admin"))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/admin/billing/delivery/",
                {"action": "retry_now", "_selected_action": [delivery.pk]},
            )
        assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("succeeded", 1, "")
    assert len(receiver.requests) == 1


def test_finance_may_not_retry_a_delivery(world, client):
    channel = AlertChannel.objects.create(
        department=world.marketing, name="ops", kind="email", emails=["ops@example.com"]
    )
    delivery = Delivery.objects.create(
        channel=channel, event_key="k", event_type="quota", subject="s", status="failed"
    )
    client.force_login(world.user("finance"))
    client.post(
        "/admin/billing/delivery/", {"action": "retry_now", "_selected_action": [delivery.pk]}
    )
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_finance_re_sends_a_finalized_statement(
    world, client, ledger, django_capture_on_commit_callbacks
):
    ledger.add(at=hour(2, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=dt.date(2026, 3, 1))
    statement = Statement.objects.get(department=world.marketing)
    services.statement_finalize(
        statement=statement, user=None, now=dt.datetime(2026, 4, 5, tzinfo=dt.UTC)
    )
    client.force_login(world.user("finance"))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/billing/statement/", {"action": "resend", "_selected_action": [statement.pk]}
        )
    sending = StatementSending.objects.get()
    assert (sending.kind, sending.requested_by, sending.status) == (
        "resent",
        world.user("finance"),
        "succeeded",
    )
    assert sending.recipients == ["mara@example.com"]


def test_it_cannot_save_a_webhook_to_a_private_address(world, client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    client.force_login(world.user("it_admin"))
    form = {
        "department": world.marketing.pk,
        "name": "hook",
        "kind": "webhook",
        "emails": "[]",
        "url": "http://169.254.169.254/latest/",
        "preset": "generic",
        "active": "on",
    }
    response = client.post("/admin/billing/alertchannel/add/", form)
    assert response.status_code == 200
    assert "link-local" in response.content.decode()
    assert not AlertChannel.objects.exists()
    # IT may allow it for this one channel.
    response = client.post("/admin/billing/alertchannel/add/", {**form, "allow_private": "on"})
    assert response.status_code == 302
    assert AlertChannel.objects.get().allow_private
