"""A sign-in at the identity provider through the portal's own pages, with Django's test
client for the browser (the journeys in a real browser are in tests/integration)."""

from urllib.parse import parse_qs, urlsplit

from tests.oidc_provider import path_and_query


def start(client, next_url: str | None = None) -> str:
    """Starts a sign-in; returns the provider's authorization address it redirects to."""
    url = "/oidc/authenticate/" + (f"?next={next_url}" if next_url else "")
    response = client.get(url)
    assert response.status_code == 302, response.content[:300]
    return response["Location"]


def sign_in(client, provider, username: str, next_url: str | None = None):
    """The whole round: the portal's redirect, the provider's answer for ``username``,
    the portal's callback. Returns the callback's response."""
    authorize_url = start(client, next_url)
    back = provider.authorize(authorize_url, username)
    return client.get(path_and_query(back))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def provider_person(provider, department, username: str, role: str) -> str:
    """``username`` at the provider, in the group the portal maps to ``role`` (manager or
    member) of ``department``; returns the username."""
    from accounts.models import RoleMapping

    group = f"{department.slug}-{role}s"
    RoleMapping.objects.get_or_create(group=group, role=role, department=department)
    provider.person(username, groups=[group])
    return username
