import pytest

from tests.accounts.conftest import make_token, with_token


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_the_token_of_an_inactive_owner_answers_401(world, scheme):
    owner = world.user("finance")
    secret = make_token(owner).secret
    assert with_token(secret, scheme).get("/api/v1/departments/").status_code == 200

    owner.is_active = False
    owner.save(update_fields=["is_active"])

    response = with_token(secret, scheme).get("/api/v1/departments/")
    assert response.status_code == 401
    assert response.json()["detail"] == ("The account this API token belongs to is switched off.")
