import pytest

from accounts.models import ApiToken
from tests.accounts.conftest import with_token


def _secret_in(html: str) -> str:
    return html.split('<code class="secret-value">', 1)[1].split("</code>", 1)[0]


def test_making_a_token_shows_its_secret_once_and_how_to_use_it(world, client, settings):
    client.force_login(world.user("member"))

    response = client.post("/accounts/tokens/", {"name": "usage export", "days": "30"})

    assert response.status_code == 200
    html = response.content.decode()
    secret = _secret_in(html)
    assert secret.startswith("gcp_") and len(secret) == 47
    assert "it is not shown again" in html
    assert f'curl -H "Authorization: Bearer {secret}" http://testserver/api/v1/departments/' in html
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=world.user("member"))
    assert (token.name, token.read_only) == ("usage export", False)
    assert (token.expires_at - token.created_at).days == 30
    # The secret works, and the page never shows it again.
    assert with_token(secret).get("/api/v1/departments/").status_code == 200
    again = client.get("/accounts/tokens/").content.decode()
    assert secret not in again and token.prefix in again


def test_a_read_only_token_made_on_the_page_is_read_only(world, client):
    client.force_login(world.user("it_admin"))
    html = client.post(
        "/accounts/tokens/", {"name": "dashboards", "days": "7", "read_only": "on"}
    ).content.decode()
    secret = _secret_in(html)
    assert "It is read-only" in html
    assert with_token(secret).post("/api/v1/tokens/", {"name": "x"}).status_code == 403


def test_the_form_offers_the_default_lifetime(world, client, settings):
    settings.API_TOKEN_DEFAULT_DAYS = 45
    client.force_login(world.user("member"))
    html = client.get("/accounts/tokens/").content.decode()
    assert 'name="days" value="45"' in html
    assert 'max="366"' in html


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"name": "", "days": "30"}, "This field is required."),
        ({"name": "   ", "days": "30"}, "This field is required."),
        ({"name": "x" * 101, "days": "30"}, "at most 100 characters"),
        ({"name": "ok", "days": "0"}, "greater than or equal to 1"),
        ({"name": "ok", "days": "367"}, "less than or equal to 366"),
        ({"name": "ok", "days": "-5"}, "greater than or equal to 1"),
        ({"name": "ok", "days": "NaN"}, "Enter a whole number."),
        ({"name": "ok", "days": "1e3"}, "Enter a whole number."),
        ({"name": "ok", "days": ""}, "This field is required."),
    ],
)
def test_a_refused_form_makes_nothing_and_says_why(world, client, form, error):
    client.force_login(world.user("member"))
    response = client.post("/accounts/tokens/", form)
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert 'class="secret-value"' not in html
    assert not ApiToken.objects.exists()
