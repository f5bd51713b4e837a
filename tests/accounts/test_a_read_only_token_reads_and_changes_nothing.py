import pytest

from departments.models import Quota
from tests.accounts.conftest import make_token, with_token

QUOTA = {"department": "marketing", "kind": "gpus", "limit": "2", "enforcement": "soft"}


@pytest.fixture
def read_only(world):
    """A read-only token of IT, whose role may write everything."""
    return make_token(world.user("it_admin"), read_only=True)


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_read_only_token_reads(world, read_only, scheme):
    client = with_token(read_only.secret, scheme)
    assert client.get("/api/v1/quotas/").status_code == 200
    assert client.get(f"/api/v1/quotas/{world.marketing_quota.pk}/").status_code == 200
    assert client.head("/api/v1/departments/").status_code == 200
    assert client.options("/api/v1/departments/").status_code == 200


# (method, path, body): writes IT's session may make, refused with a read-only token.
WRITES = [
    ("post", lambda w: "/api/v1/quotas/", QUOTA),
    ("put", lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/", {**QUOTA, "limit": "9"}),
    ("patch", lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/", {"limit": "9"}),
    ("delete", lambda w: f"/api/v1/quotas/{w.marketing_quota.pk}/", None),
    ("post", lambda w: "/api/v1/tokens/", {"name": "a writer"}),
]


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_read_only_token_is_refused_every_write_and_nothing_changes(
    world, read_only, scheme, method, path, body
):
    before = list(Quota.objects.values().order_by("pk"))
    tokens_before = read_only.token.user.api_tokens.count()

    response = getattr(with_token(read_only.secret, scheme), method)(
        path(world), body, format="json"
    )

    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"This API token ({read_only.token.prefix}…) is read-only: it cannot "
        f"{method.upper()}. Use a token that may write."
    )
    assert list(Quota.objects.values().order_by("pk")) == before
    assert read_only.token.user.api_tokens.count() == tokens_before


def test_the_same_write_with_a_read_write_token_goes_through(world):
    """The control: the refusal above is the token's, not IT's role."""
    secret = make_token(world.user("it_admin")).secret
    response = with_token(secret).patch(
        f"/api/v1/quotas/{world.marketing_quota.pk}/", {"limit": "9"}, format="json"
    )
    assert response.status_code == 200
    world.marketing_quota.refresh_from_db()
    assert world.marketing_quota.limit == 9
