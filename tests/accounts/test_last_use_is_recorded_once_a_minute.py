import datetime as dt

from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from tests.accounts.conftest import make_token, with_token


def test_a_tokens_first_use_is_recorded_with_the_clients_address(world):
    new = make_token(world.user("member"))
    assert new.token.last_used_at is None

    before = timezone.now()
    with_token(new.secret, REMOTE_ADDR="192.0.2.10").get("/api/v1/departments/")

    token = ApiToken.objects.get(pk=new.token.pk)
    assert before <= token.last_used_at <= timezone.now()
    assert token.last_used_from == "192.0.2.10"


def test_a_use_within_the_minute_writes_nothing(world):
    new = make_token(world.user("member"))
    with_token(new.secret, REMOTE_ADDR="192.0.2.10").get("/api/v1/departments/")
    first = ApiToken.objects.get(pk=new.token.pk)

    with_token(new.secret, REMOTE_ADDR="198.51.100.20").get("/api/v1/departments/")

    again = ApiToken.objects.get(pk=new.token.pk)
    assert (again.last_used_at, again.last_used_from) == (first.last_used_at, "192.0.2.10")


def test_a_use_a_minute_later_is_recorded_again(world):
    new = make_token(world.user("member"))
    a_minute_ago = timezone.now() - dt.timedelta(seconds=61)
    ApiToken.objects.filter(pk=new.token.pk).update(
        last_used_at=a_minute_ago, last_used_from="192.0.2.10"
    )

    with_token(new.secret, REMOTE_ADDR="198.51.100.20").get("/api/v1/departments/")

    token = ApiToken.objects.get(pk=new.token.pk)
    assert token.last_used_at > a_minute_ago
    assert token.last_used_from == "198.51.100.20"


def test_a_refused_token_records_no_use(world):
    new = make_token(world.user("member"))
    tokens.api_token_revoke(token=new.token, by=world.user("member"))

    assert with_token(new.secret).get("/api/v1/departments/").status_code == 401

    assert ApiToken.objects.get(pk=new.token.pk).last_used_at is None
