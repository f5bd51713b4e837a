"""A personal API token is its owner's alone: on the page and in the API, anyone else,
finance and IT included, gets 404 for it, as for a token that does not exist (IT revokes
tokens in the admin). Marketing's manager owns the token below."""

import pytest

from accounts.models import ApiToken
from tests.accounts.conftest import make_token
from tests.conftest import ROLES, client_as

LOGIN = "/accounts/login/"


def expect(anonymous, member, manager, other_manager, finance, it_admin):
    return dict(
        zip(ROLES, (anonymous, member, manager, other_manager, finance, it_admin), strict=True)
    )


# (name, method, path of the token, expected status by role, revokes?)
REQUESTS = [
    ("api read", "get", "/api/v1/tokens/{pk}/", expect(401, 404, 200, 404, 404, 404), False),
    (
        "api revoke",
        "post",
        "/api/v1/tokens/{pk}/revoke/",
        expect(401, 404, 200, 404, 404, 404),
        True,
    ),
    (
        "page revoke",
        "post",
        "/accounts/tokens/{pk}/revoke/",
        expect(LOGIN, 404, "/accounts/tokens/", 404, 404, 404),
        True,
    ),
]


def _cases():
    for name, method, path, expected, revokes in REQUESTS:
        for role in ROLES:
            yield pytest.param(role, method, path, expected[role], revokes, id=f"{name}-{role}")


@pytest.mark.parametrize(("role", "method", "path", "expected", "revokes"), list(_cases()))
def test_the_managers_token_answers_each_role_as_the_table_says(
    world, api_client, role, method, path, expected, revokes
):
    token = make_token(world.user("manager")).token
    client = client_as(api_client, world, role)

    response = getattr(client, method)(path.format(pk=token.pk))

    if isinstance(expected, str):
        assert response.status_code == 302
        assert response["Location"].split("?")[0] == expected
    else:
        assert response.status_code == expected
    revoked = ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert revoked == (revokes and role == "manager")


@pytest.mark.parametrize("role", ["member", "other_manager", "finance", "it_admin"])
def test_someone_elses_token_answers_as_one_that_does_not_exist(world, api_client, role):
    token = make_token(world.user("manager")).token
    client = client_as(api_client, world, role)
    for path in ("/api/v1/tokens/{pk}/", "/api/v1/tokens/{pk}/revoke/"):
        method = client.post if path.endswith("revoke/") else client.get
        theirs, nothing = method(path.format(pk=token.pk)), method(path.format(pk=999999))
        assert (theirs.status_code, theirs.json()) == (nothing.status_code, nothing.json())


@pytest.mark.parametrize("role", ROLES[1:])
def test_the_api_lists_only_ones_own_tokens(world, api_client, role):
    for owner in ROLES[1:]:
        make_token(world.user(owner), name=f"{owner}'s script")
    client = client_as(api_client, world, role)
    names = [t["name"] for t in client.get("/api/v1/tokens/").json()["results"]]
    assert names == [f"{role}'s script"]
