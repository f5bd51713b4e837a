"""A department's webhook gets each alert once, signed as Standard Webhooks sign, and gets
it again after the receiver failed for a passing reason (500, 429), with growing waits."""

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest
from django.core import mail
from standardwebhooks.webhooks import Webhook

from billing import notifications
from billing.models import AlertChannel, Delivery
from jobs.models import QuotaAlert
from tests.billing.receivers import http_receiver
from tests.jobs.conftest import quota

pytestmark = pytest.mark.usefixtures("tasks_run_at_once")


@pytest.fixture
def private_allowed(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.NOTIFICATIONS_RETRY_DELAYS_S = [60, 300, 1800, 7200]


def webhook(department, url, preset="generic") -> AlertChannel:
    return AlertChannel.objects.create(
        department=department, name=f"hook {preset}", kind="webhook", url=url, preset=preset
    )


def verified(channel, request) -> dict:
    """The payload, once its signature checks out with the channel's secret (the
    Standard Webhooks library, which also holds the timestamp to 5 minutes of now)."""
    return Webhook(channel.secret).verify(request.body, request.headers)


def signed_per_spec(channel, request) -> dict:
    """The payload, once its signature checks out as the spec writes it: base64 of
    HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}", keyed with the secret's
    bytes (base64 after "whsec_"), sent as "v1,<signature>". The timestamp is the
    attempt's (these attempts run on a clock set ahead)."""
    key = base64.b64decode(channel.secret.removeprefix("whsec_"))
    headers = request.headers
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" ")
    return json.loads(request.body)


def test_a_quota_alert_reaches_the_webhook_signed_after_two_failures(
    world, submit, private_allowed, django_capture_on_commit_callbacks
):
    day_quota = quota(world, "jobs_day", 2, alert_thresholds_pct=[100])
    with http_receiver(answers=[500, 500]) as receiver:
        channel = webhook(world.marketing, receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            submit()
            submit()  # 2 of 2 jobs: 100 %
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
            "pending",
            1,
            500,
        )
        first_wait = delivery.next_attempt_at - delivery.created_at
        assert dt.timedelta(seconds=55) < first_wait < dt.timedelta(seconds=65)

        # Not due yet: nothing is sent.
        assert notifications.delivery_send(delivery_id=delivery.pk) is None
        later = delivery.next_attempt_at + dt.timedelta(seconds=1)
        again = notifications.delivery_send(delivery_id=delivery.pk, now=later)
        assert (again.status, again.attempts) == ("pending", 2)
        assert again.next_attempt_at == later + dt.timedelta(seconds=300)
        retried = again.next_attempt_at + dt.timedelta(seconds=1)
        done = notifications.delivery_send(delivery_id=delivery.pk, now=retried)
        assert (done.status, done.attempts, done.last_status_code) == ("succeeded", 3, 200)
        assert done.sent_at is not None and done.next_attempt_at is None

        # Sending it again, or the alert recorded again, delivers nothing more.
        assert (
            notifications.delivery_send(delivery_id=delivery.pk, now=later + dt.timedelta(days=1))
            is None
        )
        with django_capture_on_commit_callbacks(execute=True):
            submit()  # 3 of 2: the 100 % threshold was already reached this period
            notifications.quota_alerts_notify(
                alerts=list(QuotaAlert.objects.filter(quota=day_quota)),
                subject="again",
                text="again",
            )
        assert Delivery.objects.count() == 1

    assert len(receiver.requests) == 3
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {f"msg_gpuportal_{delivery.pk}"}  # the same message, tried three times
    verified(channel, receiver.requests[0])  # sent at the real time
    payloads = [signed_per_spec(channel, r) for r in receiver.requests]
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert abs(stamps[0] - delivery.created_at.timestamp()) < 5
    assert stamps[1:] == [int(later.timestamp()), int(retried.timestamp())]
    payload = payloads[-1]
    assert payload["type"] == "quota.threshold_reached"
    data = payload["data"]
    assert data["department"]["slug"] == "marketing"
    assert (data["period"], data["threshold_pct"], data["use"], data["limit"]) == (
        "2026-11-25",
        100,
        "2",
        "2.000",
    )
    assert data["quota"]["kind"] == "jobs_day"
    assert data["links"]["department"].endswith("/departments/marketing/")
    # The managers' own mail still goes, once.
    assert len(mail.outbox) == 1


def test_a_forged_or_altered_request_does_not_verify(world, private_allowed):
    with http_receiver() as receiver:
        channel = webhook(world.marketing, receiver.url)
        notifications.notify(
            department=world.marketing, event_key="forecast:1", subject="s", text="t"
        )
        delivery = Delivery.objects.get()
        notifications.delivery_send(delivery_id=delivery.pk)
    request = receiver.requests[0]
    assert verified(channel, request)["data"]["event_key"] == "forecast:1"
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(channel.secret).verify(
            request.body.replace(b"forecast", b"forecasT"), request.headers
        )
    other = AlertChannel(secret=notifications_secret())
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(request.body, request.headers)


def notifications_secret() -> str:
    from billing.notifications_models import webhook_secret_new

    return webhook_secret_new()


@pytest.mark.parametrize(
    ("answers", "status", "attempts", "retry"),
    [
        ([404], "failed", 1, False),
        ([400], "failed", 1, False),
        ([302], "failed", 1, False),  # redirects are not followed
        ([408], "pending", 1, True),
        ([429], "pending", 1, True),
        ([503], "pending", 1, True),
    ],
)
def test_what_each_answer_means(world, private_allowed, answers, status, attempts, retry):
    with http_receiver(answers=answers) as receiver:
        webhook(world.marketing, receiver.url)
        notifications.notify(department=world.marketing, event_key="x:1", subject="s", text="t")
        delivery = notifications.delivery_send(delivery_id=Delivery.objects.get().pk)
    assert (delivery.status, delivery.attempts) == (status, attempts)
    assert delivery.last_status_code == answers[0]
    assert (delivery.next_attempt_at is not None) == retry
    assert f"HTTP {answers[0]}" in delivery.last_error


def test_it_gives_up_after_the_last_wait(world, private_allowed, settings):
    settings.NOTIFICATIONS_RETRY_DELAYS_S = [60, 300]
    with http_receiver(answers=[500] * 5) as receiver:
        webhook(world.marketing, receiver.url)
        notifications.notify(department=world.marketing, event_key="x:1", subject="s", text="t")
        pk = Delivery.objects.get().pk
        now = dt.datetime.now(dt.UTC)
        seen = []
        for _ in range(5):
            delivery = notifications.delivery_send(delivery_id=pk, now=now)
            if delivery is None:
                break
            seen.append(delivery.status)
            now = (delivery.next_attempt_at or now) + dt.timedelta(seconds=1)
    assert seen == ["pending", "pending", "failed"]
    assert len(receiver.requests) == 3


def test_an_unreachable_receiver_is_tried_again(world, private_allowed):
    with http_receiver() as receiver:
        url = receiver.url
    webhook(world.marketing, url)  # nobody listens there any more
    notifications.notify(department=world.marketing, event_key="x:1", subject="s", text="t")
    delivery = notifications.delivery_send(delivery_id=Delivery.objects.get().pk)
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
    assert delivery.last_status_code is None and "Connection" in delivery.last_error


@pytest.mark.parametrize("preset", ["slack", "teams"])
def test_slack_and_teams_get_the_shape_they_accept(world, private_allowed, preset):
    with http_receiver() as receiver:
        channel = webhook(world.marketing, receiver.url, preset)
        notifications.notify(
            department=world.marketing, event_key="x:1", subject="Budget at 80 %", text="Details"
        )
        notifications.delivery_send(delivery_id=Delivery.objects.get().pk)
    body = json.loads(receiver.requests[0].body)
    verified(channel, receiver.requests[0])
    if preset == "slack":
        assert body["text"].startswith("Budget at 80 %")
        assert body["blocks"][0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "Budget at 80 %"},
        }
    else:
        (attachment,) = body["attachments"]
        assert body["type"] == "message"
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "Budget at 80 %"
        assert card["actions"][0]["url"].endswith("/departments/marketing/")


def test_an_email_channel_mails_its_addresses_once(world, django_capture_on_commit_callbacks):
    AlertChannel.objects.create(
        department=world.marketing, name="ops", kind="email", emails=["ops@example.com"]
    )
    webhook_for_training = AlertChannel.objects.create(
        department=world.training, name="ops", kind="email", emails=["t@example.com"]
    )
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            notifications.notify(
                department=world.marketing, event_key="x:1", subject="Subject", text="Body"
            )
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert Delivery.objects.get().status == "succeeded"
    assert not webhook_for_training.deliveries.exists()
