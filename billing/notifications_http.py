"""Posting a webhook without letting its URL reach inside the company network.

A URL is refused unless it is http(s) and every address its host resolves to is a public
one: loopback, private, link-local, shared, reserved, multicast and unspecified ranges are
refused, in IPv4 and IPv6 alike (an IPv4 address mapped or embedded in IPv6 is judged as
the IPv4 address it carries). The name is resolved with the system's resolver, which also
reads the decimal and octal spellings of an address (``http://2130706433/``,
``http://0177.0.0.1/``) as what they are. The check runs when a channel is saved and again
at every sending, and the request then goes to the very address that was checked (the Host
header and the TLS server name stay the URL's), so a name that resolves elsewhere
meanwhile (DNS rebinding) cannot slip through. Redirects are never followed.

``allow_private`` (IT's per-channel flag, or the ``WEBHOOKS_ALLOW_PRIVATE`` setting) lifts the
address rule, never the scheme rule.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The URL may not be posted to; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def address_refusal(address: Address) -> str | None:
    """Why the portal may not post to ``address``, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is not None:
            return address_refusal(embedded)
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_private:
        return f"{address} is in a private range"
    if address.is_reserved or not address.is_global:
        return f"{address} is in a reserved range"
    return None


def _host_and_port(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"{url!r} is not a URL: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise UrlRefused("The URL names no host.")
    if parts.username or parts.password:
        raise UrlRefused("Put no user name or password in the URL; the signature authenticates.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"The host {host} cannot be resolved ({exc}).") from exc
    # Drop an IPv6 zone ("fe80::1%eth0"): the address alone decides.
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def checked_address(url: str, *, allow_private: bool = False) -> Address:
    """The address the portal will post ``url`` to, after checking the URL and every
    address its host resolves to. Raises :class:`UrlRefused`."""
    _, host, port = _host_and_port(url)
    addresses = _resolve(host, port)
    if not addresses:
        raise UrlRefused(f"The host {host} resolves to no address.")
    allow_private = allow_private or settings.WEBHOOKS_ALLOW_PRIVATE
    if not allow_private:
        for address in addresses:
            why = address_refusal(address)
            if why is not None:
                raise UrlRefused(
                    f"{host} resolves to {why}: webhooks may only reach public addresses."
                )
    return addresses[0]


def url_check(url: str, *, allow_private: bool = False) -> None:
    """Raises :class:`UrlRefused` when ``url`` may not receive webhooks."""
    checked_address(url, allow_private=allow_private)


def post(url: str, *, body: bytes, headers: dict[str, str], allow_private: bool = False) -> Answer:
    """POST ``body`` to ``url`` at the address that was checked, with the portal's
    timeouts and no redirect followed. Raises :class:`UrlRefused`, or urllib3's errors
    when the other end cannot be reached or does not answer in time."""
    scheme, host, port = _host_and_port(url)
    address = checked_address(url, allow_private=allow_private)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOKS_CONNECT_TIMEOUT_S, read=settings.WEBHOOKS_READ_TIMEOUT_S
    )
    options = {"timeout": timeout, "retries": False, "maxsize": 1}
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            str(address), port, server_hostname=host, assert_hostname=host, **options
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, **options)
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
        )
        try:
            text = response.read(2000, decode_content=True).decode("utf-8", "replace")
        finally:
            response.release_conn()
        return Answer(status=response.status, body=text)
    finally:
        pool.close()
