import pytest

from accounts import tokens
from tests.accounts.conftest import expire, make_token, with_token
from tests.factories import UserFactory


@pytest.fixture
def own_and_others(world):
    manager = world.user("manager")
    active = make_token(manager, name="nightly export", read_only=True).token
    expired = expire(make_token(manager, name="old laptop").token)
    revoked = make_token(manager, name="leaked in a log").token
    tokens.api_token_revoke(token=revoked, by=manager)
    others = [
        make_token(world.user(role), name=f"{role}'s private script").token
        for role in ("member", "other_manager", "finance", "it_admin")
    ]
    return {"active": active, "expired": expired, "revoked": revoked, "others": others}


def _rows(html: str) -> list[str]:
    body = html.split('<table class="tokens">', 1)[1].split("</table>", 1)[0]
    return body.split("<tr>")[2:]  # past the header row


def test_the_page_lists_each_of_your_tokens_with_its_state(world, client, own_and_others):
    client.force_login(world.user("manager"))
    html = client.get("/accounts/tokens/").content.decode()
    rows = _rows(html)
    assert len(rows) == 3
    by_name = {
        name: row for row in rows for name in ("nightly", "old laptop", "leaked") if name in row
    }
    assert "token-active" in by_name["nightly"] and "read-only" in by_name["nightly"]
    assert "token-expired" in by_name["old laptop"] and "read-write" in by_name["old laptop"]
    assert "token-revoked" in by_name["leaked"]
    assert own_and_others["active"].prefix + "…" in by_name["nightly"]
    # Only an active token has a revoke button.
    assert [("Revoke</button>" in row) for row in rows].count(True) == 1
    assert f"/accounts/tokens/{own_and_others['active'].pk}/revoke/" in by_name["nightly"]


def test_the_page_shows_no_one_elses_token(world, client, own_and_others):
    client.force_login(world.user("manager"))
    html = client.get("/accounts/tokens/").content.decode()
    for token in own_and_others["others"]:
        assert token.name not in html
        assert token.prefix not in html


def test_finance_and_it_see_their_own_tokens_only_too(world, client, own_and_others):
    client.force_login(world.user("it_admin"))
    html = client.get("/accounts/tokens/").content.decode()
    assert "it_admin&#x27;s private script" in html
    assert "nightly export" not in html and "finance&#x27;s private script" not in html


def test_the_page_shows_when_and_where_a_token_was_last_used(world, client):
    new = make_token(world.user("member"), name="cron")
    with_token(new.secret, REMOTE_ADDR="203.0.113.9").get("/api/v1/departments/")

    client.force_login(world.user("member"))
    html = client.get("/accounts/tokens/").content.decode()
    assert "from 203.0.113.9" in html
    assert "never" not in _rows(html)[0]


def test_someone_without_any_role_has_the_page_too(db, client):
    client.force_login(UserFactory(username="newcomer"))
    response = client.get("/accounts/tokens/")
    assert response.status_code == 200
    assert "You have no API token yet." in response.content.decode()


def test_the_top_bar_links_to_the_page(world, client):
    client.force_login(world.user("member"))
    assert 'href="/accounts/tokens/">API tokens</a>' in client.get("/jobs/").content.decode()
