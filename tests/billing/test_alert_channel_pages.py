"""A department's alert channels in the browser (``/departments/<slug>/alerts/``): who may
read and change them, a webhook's secret shown once, refusals in the API's words, hostile
URLs refused as form errors."""

import datetime as dt
import html

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import AlertChannel, Delivery
from tests.conftest import ROLES, client_as

LOGIN = "/accounts/login/"
PUBLIC_HOOK = "https://93.184.215.14/services/T0001/B0002/TOKEN-IN-THE-PATH"


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


def channel(department, name="ops", **fields):
    fields = {"kind": "email", "emails": ["ops@example.com"], **fields}
    return AlertChannel.objects.create(department=department, name=name, **fields)


def page(department) -> str:
    return f"/departments/{department.slug}/alerts/"


def change_url(target) -> str:
    return f"/departments/{target.department.slug}/alerts/{target.pk}/"


def text(response) -> str:
    return html.unescape(response.content.decode())


EMAIL_BODY = {"name": "desk", "kind": "email", "emails": "desk@example.com"}

# "page": back to the alerts page (it worked); LOGIN: sent to sign in; a number: the status.
POSTS = [
    (
        "create on marketing",
        lambda w: page(w.marketing),
        EMAIL_BODY,
        expect(LOGIN, 404, "page", 404, 403, "page"),
    ),
    (
        "create on training",
        lambda w: page(w.training),
        EMAIL_BODY,
        expect(LOGIN, 404, 404, "page", 403, "page"),
    ),
    (
        "create on no department",
        lambda w: "/departments/nope/alerts/",
        EMAIL_BODY,
        expect(LOGIN, 404, 404, 404, 404, 404),
    ),
    (
        "switch off marketing's channel",
        lambda w: change_url(channel(w.marketing)),
        {"action": "deactivate"},
        expect(LOGIN, 404, "page", 404, 403, "page"),
    ),
    (
        "delete marketing's channel",
        lambda w: change_url(channel(w.marketing)),
        {"action": "delete"},
        expect(LOGIN, 404, "page", 404, 403, "page"),
    ),
    (
        "delete training's channel",
        lambda w: change_url(channel(w.training)),
        {"action": "delete"},
        expect(LOGIN, 404, 404, "page", 403, "page"),
    ),
]


def _cases(table):
    for name, url, body, expected in table:
        for role in ROLES:
            yield pytest.param(role, url, body, expected[role], id=f"{name}-{role}")


def _state():
    return sorted(AlertChannel.objects.values_list("department__slug", "name", "active"))


@pytest.mark.parametrize(("role", "url", "body", "expected"), list(_cases(POSTS)))
def test_each_post_answers_each_role_as_the_table_says(world, client, role, url, body, expected):
    address = url(world)
    before = _state()
    client_as(client, world, role)
    response = client.post(address, body)
    if expected == "page":
        assert response.status_code == 302
        slug = address.split("/")[2]
        assert response["Location"] == f"/departments/{slug}/alerts/"
        assert _state() != before  # it did what it was asked
    elif expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].split("?")[0] == LOGIN
        assert _state() == before
    else:
        assert response.status_code == expected
        assert _state() == before


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("member", 404),
        ("manager", 200),
        ("other_manager", 404),
        ("finance", 200),
        ("it_admin", 200),
    ],
)
def test_the_page_answers_each_role(world, client, role, status):
    channel(world.marketing, name="marketing-pager", emails=["pager@example.com"])
    client_as(client, world, role)
    response = client.get(page(world.marketing))
    assert response.status_code == status
    if status == 200:
        assert "pager@example.com" in text(response)


def test_finance_reads_the_channels_without_a_form_or_buttons(world, client):
    channel(world.marketing)
    client_as(client, world, "finance")
    body = text(client.get(page(world.marketing)))
    assert "ops@example.com" in body
    assert "Add channel" not in body and 'name="action"' not in body
    client_as(client, world, "manager")
    body = text(client.get(page(world.marketing)))
    assert "Add channel" in body and 'value="deactivate"' in body and 'value="delete"' in body


@pytest.mark.parametrize(
    ("role", "linked"),
    [("member", False), ("manager", True), ("finance", True), ("it_admin", True)],
)
def test_the_department_page_links_the_alerts_for_those_who_may_read_them(
    world, client, role, linked
):
    client_as(client, world, role)
    body = text(client.get(f"/departments/{world.marketing.slug}/"))
    assert (f'href="{page(world.marketing)}"' in body) is linked


def test_a_manager_adds_an_email_channel(world, client):
    client_as(client, world, "manager")
    response = client.post(
        page(world.marketing),
        {"name": "desk", "kind": "email", "emails": "a@example.com, b@example.com\nc@example.com"},
        follow=True,
    )
    made = AlertChannel.objects.get(department=world.marketing, name="desk")
    assert made.kind == "email" and made.active
    assert made.emails == ["a@example.com", "b@example.com", "c@example.com"]
    assert made.created_by == world.user("manager")
    body = text(response)
    assert "The channel desk is added." in body
    assert "a@example.com, b@example.com, c@example.com" in body
    assert made.secret not in body and 'id="secret"' not in body


def test_a_webhooks_secret_is_shown_once_on_the_next_page(world, client):
    client_as(client, world, "manager")
    made = client.post(
        page(world.marketing),
        {"name": "slack", "kind": "webhook", "url": PUBLIC_HOOK, "preset": "slack"},
    )
    assert made.status_code == 302
    hook = AlertChannel.objects.get(department=world.marketing, name="slack")
    assert hook.secret.startswith("whsec_") and hook.preset == "slack"
    assert hook.url == PUBLIC_HOOK and hook.created_by == world.user("manager")

    first = client.get(made["Location"])
    assert text(first).count(hook.secret) == 1
    assert "Copy it now: it is never shown again." in text(first)
    assert "no-store" in first["Cache-Control"]
    # The host, never the URL's path (a Slack URL's path is its token).
    assert "93.184.215.14" in text(first) and "TOKEN-IN-THE-PATH" not in text(first)

    again = client.get(page(world.marketing))
    assert again.status_code == 200
    assert hook.secret not in text(again) and "Copy it now" not in text(again)
    assert "Slack" in text(again)
    client_as(client, world, "it_admin")
    assert hook.secret not in text(client.get(page(world.marketing)))


def test_a_secret_due_is_shown_on_no_other_departments_page(world, client):
    """The session says which channel's secret is due; another department's page (IT
    reads both) shows none of it."""
    client_as(client, world, "it_admin")
    client.post(page(world.marketing), {"name": "hook", "kind": "webhook", "url": PUBLIC_HOOK})
    hook = AlertChannel.objects.get(name="hook")
    assert hook.secret not in text(client.get(page(world.training)))
    assert hook.secret not in text(client.get(page(world.marketing)))  # it was due once


def _api_refusal(api_client, world, body) -> str:
    client_as(api_client, world, "manager")
    answer = api_client.post(
        "/api/v1/alert-channels/", {"department": "marketing", **body}, format="json"
    )
    assert answer.status_code == 400, answer.content
    return str(answer.json()["url"][0])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.5/hook", "is in a private range: webhooks may only reach public"),
        ("http://127.0.0.1:8000/hook", "is a loopback address"),
        ("ftp://93.184.215.14/hook", "Only http:// and https:// URLs can receive webhooks."),
        ("not a url", "Enter a valid URL."),
    ],
)
def test_a_refused_webhook_is_a_form_error_in_the_apis_words(world, client, api_client, url, words):
    body = {"name": "inside", "kind": "webhook", "url": url, "preset": "generic"}
    api_words = _api_refusal(api_client, world, body)
    assert words in api_words
    client_as(client, world, "manager")
    response = client.post(page(world.marketing), body)
    assert response.status_code == 200
    assert f'<p class="error" id="id_url_error">{api_words}</p>' in text(response)
    assert not AlertChannel.objects.exists()


def test_a_manager_cannot_let_a_webhook_reach_private_addresses_but_it_can(world, client):
    body = {"name": "inside", "kind": "webhook", "url": "http://10.0.0.5/hook"}
    client_as(client, world, "manager")
    refused = client.post(page(world.marketing), {**body, "allow_private": "on"})
    assert "private range" in text(refused) and 'name="allow_private"' not in text(refused)
    assert not AlertChannel.objects.exists()
    client_as(client, world, "it_admin")
    assert 'name="allow_private"' in text(client.get(page(world.marketing)))
    assert client.post(page(world.marketing), {**body, "allow_private": "on"}).status_code == 302
    assert AlertChannel.objects.get(name="inside").allow_private


def test_an_email_channel_needs_valid_addresses(world, client):
    client_as(client, world, "manager")
    empty = client.post(page(world.marketing), {"name": "x", "kind": "email", "emails": " "})
    assert "An e-mail channel needs an address." in text(empty)
    wrong = client.post(
        page(world.marketing), {"name": "x", "kind": "email", "emails": "ok@example.com nope"}
    )
    assert "nope: Enter a valid email address." in text(wrong)
    assert not AlertChannel.objects.exists()


def test_a_name_used_twice_in_a_department_is_refused(world, client):
    channel(world.marketing, name="desk")
    client_as(client, world, "manager")
    response = client.post(page(world.marketing), EMAIL_BODY)
    assert response.status_code == 200 and 'class="error"' in text(response)
    assert AlertChannel.objects.filter(name="desk").count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/" + "a" * 5000,
        "http://93.184.215.14/\x00hook",
        "http://bücher.invalid/hook",
        "javascript:alert(document.cookie)",
        "http://[::1/hook",
        "http://93.184.215.14:99999/hook",
    ],
    ids=["very long", "NUL", "unicode host", "javascript", "broken IPv6", "port too big"],
)
def test_a_hostile_url_is_a_form_error_not_a_server_error(world, client, url):
    client_as(client, world, "manager")
    response = client.post(
        page(world.marketing), {"name": "hostile", "kind": "webhook", "url": url}
    )
    assert response.status_code == 200
    assert 'id="id_url_error"' in text(response)
    assert not AlertChannel.objects.exists()


def test_a_hostile_kind_or_preset_is_refused(world, client):
    client_as(client, world, "manager")
    response = client.post(
        page(world.marketing),
        {"name": "x", "kind": "<script>", "url": PUBLIC_HOOK, "preset": "nope"},
    )
    assert response.status_code == 200
    assert "<script>" not in response.content.decode()
    assert 'id="id_kind_error"' in text(response)
    assert not AlertChannel.objects.exists()


def test_switching_a_channel_off_and_on(world, client):
    target = channel(world.marketing)
    client_as(client, world, "manager")
    client.post(change_url(target), {"action": "deactivate"})
    target.refresh_from_db()
    assert not target.active
    assert 'value="activate"' in text(client.get(page(world.marketing)))
    client.post(change_url(target), {"action": "activate"})
    target.refresh_from_db()
    assert target.active


def test_a_webhook_whose_url_is_refused_now_stays_off(world, client):
    target = channel(
        world.marketing, name="old", kind="webhook", url="http://10.0.0.5/h", active=False
    )
    client_as(client, world, "manager")
    response = client.post(change_url(target), {"action": "activate"}, follow=True)
    target.refresh_from_db()
    assert not target.active
    assert "The channel old stays off: 10.0.0.5 resolves to 10.0.0.5 is in a private range" in (
        text(response)
    )


def test_deleting_a_channel_deletes_its_deliveries(world, client):
    target = channel(world.marketing)
    kept = channel(world.marketing, name="kept")
    Delivery.objects.create(channel=target, event_key="k", event_type="quota", subject="s")
    client_as(client, world, "manager")
    response = client.post(change_url(target), {"action": "delete"}, follow=True)
    assert "The channel ops is deleted." in text(response)
    assert list(AlertChannel.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Delivery.objects.exists()


def test_another_departments_channel_cannot_be_changed_through_this_department(world, client):
    """IT may change both; a training channel under marketing's address is no channel."""
    target = channel(world.training)
    client_as(client, world, "it_admin")
    url = f"/departments/{world.marketing.slug}/alerts/{target.pk}/"
    assert client.post(url, {"action": "delete"}).status_code == 404
    assert AlertChannel.objects.filter(pk=target.pk).exists()


def test_an_unknown_action_changes_nothing(world, client):
    target = channel(world.marketing)
    client_as(client, world, "manager")
    response = client.post(change_url(target), {"action": "explode"}, follow=True)
    assert "Choose one of activate, deactivate, delete." in text(response)
    target.refresh_from_db()
    assert target.active


def test_changes_are_posts(world, client):
    target = channel(world.marketing)
    client_as(client, world, "manager")
    assert client.get(change_url(target)).status_code == 405


def test_csrf_is_enforced(world):
    target = channel(world.marketing)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.user("manager"))
    assert client.post(page(world.marketing), EMAIL_BODY).status_code == 403
    assert client.post(change_url(target), {"action": "delete"}).status_code == 403
    assert list(AlertChannel.objects.values_list("name", flat=True)) == ["ops"]
    # With the page's token the same requests go through.
    client.get(page(world.marketing))
    token = client.cookies["csrftoken"].value
    assert client.post(
        page(world.marketing), {**EMAIL_BODY, "csrfmiddlewaretoken": token}
    ).status_code == (302)
    assert client.post(
        change_url(target), {"action": "delete", "csrfmiddlewaretoken": token}
    ).status_code == (302)
    assert list(AlertChannel.objects.values_list("name", flat=True)) == ["desk"]


def test_the_page_lists_the_departments_last_50_deliveries(world, client):
    ours = channel(world.marketing, name="ours")
    theirs = channel(world.training, name="theirs")
    start = timezone.now() - dt.timedelta(days=1)
    for n in range(55):
        delivery = Delivery.objects.create(
            channel=ours,
            event_key=f"k{n}",
            event_type="quota.threshold_reached",
            subject=f"Alert number {n:02d}",
            status="pending" if n == 54 else "succeeded",
            attempts=2 if n == 54 else 1,
            last_answer="HTTP 503: busy" if n == 54 else "HTTP 200",
            next_attempt_at=start + dt.timedelta(hours=30) if n == 54 else None,
        )
        Delivery.objects.filter(pk=delivery.pk).update(created_at=start + dt.timedelta(minutes=n))
    Delivery.objects.create(channel=theirs, event_key="t", event_type="quota", subject="Training's")
    client_as(client, world, "manager")
    body = text(client.get(page(world.marketing)))
    shown = [n for n in range(55) if f"Alert number {n:02d}" in body]
    assert shown == list(range(5, 55))
    assert body.index("Alert number 54") < body.index("Alert number 53")
    assert "HTTP 503: busy" in body and "Training's" not in body
    assert "theirs" not in body
