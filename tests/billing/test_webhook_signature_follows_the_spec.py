"""The signature is the Standard Webhooks one: the spec's published test vector, and the
headers the portal sends for a delivery."""

import base64
import datetime as dt
import hashlib
import hmac

from standardwebhooks.webhooks import Webhook

from billing import notifications
from billing.models import AlertChannel, Delivery
from billing.notifications_models import webhook_secret_new

# From the Standard Webhooks repository (libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signer_gives_the_spec_test_vector():
    at = dt.datetime.fromtimestamp(SPEC_TIMESTAMP, dt.UTC)
    assert Webhook(SPEC_SECRET).sign(msg_id=SPEC_ID, timestamp=at, data=SPEC_BODY) == SPEC_SIGNATURE


def test_a_new_secret_is_32_random_bytes_in_the_spec_format():
    secret = webhook_secret_new()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert webhook_secret_new() != secret


def test_a_delivery_is_sent_with_the_three_headers_over_the_exact_body(world):
    channel = AlertChannel.objects.create(
        department=world.marketing,
        name="hook",
        kind="webhook",
        url="https://93.184.215.14/x",
        secret=SPEC_SECRET,
    )
    delivery = Delivery.objects.create(
        channel=channel, event_key="quota:1:2026-11:80", event_type="quota", subject="s", text="t"
    )
    at = dt.datetime.fromtimestamp(SPEC_TIMESTAMP, dt.UTC)
    body, headers = notifications.webhook_request(delivery, now=at)
    assert headers["webhook-id"] == f"msg_gpuportal_{delivery.pk}"
    assert headers["webhook-timestamp"] == str(SPEC_TIMESTAMP)
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    digest = hmac.new(
        key, f"{headers['webhook-id']}.{SPEC_TIMESTAMP}.".encode() + body, hashlib.sha256
    ).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
