"""A webhook URL may only reach public addresses over http(s): refused when the channel is
saved and again when it is sent (a name may resolve elsewhere by then), unless IT allows
private addresses."""

import datetime as dt
import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import notifications
from billing.models import AlertChannel, Delivery
from billing.notifications_http import UrlRefused, address_refusal, url_check

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one decimal number
    "http://0177.0.0.1/hook",  # ... in octal
    "http://0x7f000001/hook",  # ... in hex
    "http://0.0.0.0/hook",
    "http://localhost:8000/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://192.0.2.1/hook",  # documentation
    "http://240.0.0.1/hook",  # reserved
    "http://224.0.0.1/hook",  # multicast
    "ftp://93.184.215.14/hook",
    "file:///etc/passwd",
    "gopher://93.184.215.14/",
    "http://user:pass@93.184.215.14/hook",
    "http:///hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_url_inside_the_network_is_refused(url, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(UrlRefused):
        url_check(url)


@pytest.mark.parametrize(
    "url",
    ["http://93.184.215.14/hook", "https://93.184.215.14:8443/x?y=1", "http://[2606:4700::1]/"],
)
def test_a_public_address_is_accepted(url, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    url_check(url)


def test_it_may_allow_private_addresses_but_never_other_schemes(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    url_check("http://127.0.0.1:9/hook")
    with pytest.raises(UrlRefused):
        url_check("file:///etc/passwd")
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    url_check("http://10.0.0.5/hook", allow_private=True)  # the channel's flag, set by IT


PRIVATE_NETWORKS = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
]


@st.composite
def private_addresses(draw):
    network = ipaddress.ip_network(draw(st.sampled_from(PRIVATE_NETWORKS)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    address = network[offset]
    if address.version == 4 and draw(st.booleans()):
        return ipaddress.IPv6Address(f"::ffff:{address}")  # the same, mapped into IPv6
    return address


@given(private_addresses())
def test_no_address_of_a_private_or_reserved_range_is_accepted(address):
    assert address_refusal(address) is not None


@given(st.integers(0, 2**32 - 1))
def test_an_ipv4_address_is_judged_as_the_standard_library_judges_it(number):
    address = ipaddress.IPv4Address(number)
    assert (address_refusal(address) is None) == (address.is_global and not address.is_multicast)


def test_a_name_that_resolves_inside_is_refused_when_saved_and_when_sent(
    world, settings, monkeypatch
):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    answers = {"hooks.example.com": "93.184.215.14"}
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    channel = AlertChannel(
        department=world.marketing, name="hook", kind="webhook", url="http://hooks.example.com/x"
    )
    notifications.channel_check(channel)  # public when saved
    channel.save()
    answers["hooks.example.com"] = "127.0.0.1"  # the name now points inside
    with pytest.raises(UrlRefused):
        notifications.channel_check(channel)
    notifications.notify(department=world.marketing, event_key="x:1", subject="s", text="t")
    delivery = notifications.delivery_send(
        delivery_id=Delivery.objects.get().pk, now=dt.datetime.now(dt.UTC)
    )
    assert delivery.status == "failed"
    assert "127.0.0.1 is a loopback address" in delivery.last_error
