import pytest

from tests.accounts.conftest import make_token, with_token

QUOTA = {"department": "marketing", "kind": "gpus", "limit": "2", "enforcement": "soft"}


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_a_personal_token_reads_as_its_owner_in_either_scheme(world, scheme):
    secret = make_token(world.user("member")).secret
    response = with_token(secret, scheme).get("/api/v1/departments/")
    assert response.status_code == 200
    # The member's scope: marketing only, as with a session.
    assert [d["slug"] for d in response.json()["results"]] == ["marketing"]


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_read_write_token_writes_with_its_owners_rights(world, scheme):
    secret = make_token(world.user("it_admin")).secret
    response = with_token(secret, scheme).post("/api/v1/quotas/", QUOTA, format="json")
    assert response.status_code == 201, response.json()
    assert world.marketing.quotas.filter(kind="gpus").count() == 1


def test_a_token_does_not_give_more_than_its_owners_role(world):
    secret = make_token(world.user("member")).secret
    response = with_token(secret).post("/api/v1/quotas/", QUOTA, format="json")
    assert response.status_code == 403
    assert not world.marketing.quotas.filter(kind="gpus").exists()


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_an_unknown_personal_token_is_refused_with_a_reason(world, scheme):
    response = with_token("gcp_" + "x" * 43, scheme).get("/api/v1/departments/")
    assert response.status_code == 401
    assert response.json()["detail"] == "This API token is not known to the portal."


def test_a_token_with_a_space_in_it_is_refused(world):
    secret = make_token(world.user("member")).secret
    response = with_token(f"{secret} extra").get("/api/v1/departments/")
    assert response.status_code == 401
    assert "exactly one token" in response.json()["detail"]
