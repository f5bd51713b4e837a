"""What the alert-channel API shows and lets each role do beyond the permission table:
who sees which channels, the secret shown once, IT's private-address flag."""

import pytest

from billing.models import AlertChannel, Delivery
from tests.conftest import client_as


def channel(department, name="ops"):
    return AlertChannel.objects.create(
        department=department, name=name, kind="email", emails=["o@example.com"]
    )


@pytest.mark.parametrize(
    ("role", "seen"),
    [
        ("member", []),
        ("manager", ["marketing"]),
        ("other_manager", ["training"]),
        ("finance", ["marketing", "training"]),
        ("it_admin", ["marketing", "training"]),
    ],
)
def test_each_role_lists_the_channels_and_deliveries_it_may_see(world, api_client, role, seen):
    for department in (world.marketing, world.training):
        Delivery.objects.create(
            channel=channel(department), event_key="k", event_type="quota", subject="s"
        )
    client = client_as(api_client, world, role)
    channels = client.get("/api/v1/alert-channels/").json()["results"]
    deliveries = client.get("/api/v1/alert-deliveries/").json()["results"]
    assert sorted(c["department"] for c in channels) == seen
    assert sorted(d["department"] for d in deliveries) == seen


def test_a_webhook_secret_is_shown_once(world, api_client, settings):
    client = client_as(api_client, world, "manager")
    made = client.post(
        "/api/v1/alert-channels/",
        {
            "department": "marketing",
            "name": "slack",
            "kind": "webhook",
            "url": "https://93.184.215.14/services/T/B/X",
            "preset": "slack",
        },
        format="json",
    )
    assert made.status_code == 201, made.content
    secret = made.json()["secret"]
    stored = AlertChannel.objects.get(name="slack")
    assert secret == stored.secret and secret.startswith("whsec_")
    again = client.get(f"/api/v1/alert-channels/{stored.pk}/").json()
    assert again["secret"] is None


def test_a_manager_cannot_allow_private_addresses_but_it_can(world, api_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    body = {
        "department": "marketing",
        "name": "inside",
        "kind": "webhook",
        "url": "http://10.0.0.5/hook",
        "allow_private": True,
    }
    refused = client_as(api_client, world, "manager").post(
        "/api/v1/alert-channels/", body, format="json"
    )
    assert refused.status_code == 400
    assert "private range" in refused.json()["url"][0]
    api_client.logout()
    allowed = client_as(api_client, world, "it_admin").post(
        "/api/v1/alert-channels/", body, format="json"
    )
    assert allowed.status_code == 201
    assert AlertChannel.objects.get(name="inside").allow_private


def test_a_webhook_that_no_longer_passes_its_check_can_still_be_switched_off(
    world, api_client, settings
):
    """Its address now reaches a private range (a host that moved, a rule that changed):
    switching it off sends nothing, so it is allowed; switching it on is checked again."""
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    hook = AlertChannel.objects.create(
        department=world.marketing,
        name="moved",
        kind="webhook",
        url="http://127.0.0.1:9/hook",
        secret="whsec_dGVzdA==",
    )
    client = client_as(api_client, world, "manager")
    url = f"/api/v1/alert-channels/{hook.pk}/"
    off = client.patch(url, {"active": False}, format="json")
    assert off.status_code == 200, off.content
    hook.refresh_from_db()
    assert hook.active is False
    on = client.patch(url, {"active": True}, format="json")
    assert on.status_code == 400
    assert "url" in on.json()
    hook.refresh_from_db()
    assert hook.active is False
