import pytest
from django.utils import timezone

from accounts import tokens
from tests.accounts.conftest import expire, make_token, with_token


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_revoked_token_answers_401_saying_when_it_was_revoked(world, scheme):
    owner = world.user("manager")
    new = make_token(owner)
    client = with_token(new.secret, scheme)
    assert client.get("/api/v1/departments/").status_code == 200

    token = tokens.api_token_revoke(token=new.token, by=owner)

    response = client.get("/api/v1/departments/")
    assert response.status_code == 401
    moment = f"{timezone.localtime(token.revoked_at):%Y-%m-%d %H:%M}"
    assert response.json()["detail"] == (
        f"This API token ({token.prefix}…) was revoked on {moment}. Make a new one."
    )


def test_a_revoked_token_that_also_expired_says_it_was_revoked(world):
    new = make_token(world.user("manager"))
    tokens.api_token_revoke(token=new.token, by=world.user("it_admin"))
    expire(new.token)
    assert "was revoked" in with_token(new.secret).get("/api/v1/jobs/").json()["detail"]
