import datetime as dt

import pytest
from django.utils import timezone

from tests.accounts.conftest import expire, make_token, with_token


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_an_expired_token_answers_401_with_the_moment_it_expired(world, scheme):
    new = make_token(world.user("finance"))
    token = expire(new.token, ago=dt.timedelta(days=2))

    response = with_token(new.secret, scheme).get("/api/v1/departments/")

    assert response.status_code == 401
    moment = f"{timezone.localtime(token.expires_at):%Y-%m-%d %H:%M}"
    assert response.json()["detail"] == (
        f"This API token ({token.prefix}…) expired on {moment}. Make a new one."
    )


def test_a_token_is_taken_until_its_last_moment(world):
    new = make_token(world.user("finance"), days=1)
    assert with_token(new.secret).get("/api/v1/departments/").status_code == 200
    expire(new.token, ago=dt.timedelta(seconds=1))
    assert with_token(new.secret).get("/api/v1/departments/").status_code == 401
