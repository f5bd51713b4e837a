"""Password sign-in stays for a break-glass account and can be turned off
(``PASSWORD_LOGIN=0``), on every door that takes a password."""

import pytest

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _password_sign_in(client, user, path="/accounts/login/"):
    return client.post(path, {"username": user.username, "password": PASSWORD, "next": "/"})


def test_passwords_work_by_default(world, client):
    assert _password_sign_in(client, world.user("finance"))["Location"] == "/"


def test_with_password_login_off_no_password_signs_in_anywhere(world, client, settings):
    settings.PASSWORD_LOGIN = False
    finance = world.user("finance")
    response = _password_sign_in(client, finance)
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert "Password sign-in is turned off here" in page
    assert 'name="password"' not in page
    assert "No way to sign in is set up" in page  # and no provider either
    assert client.get("/").status_code == 302  # still signed out
    # The admin's door sends people to the portal's sign-in page.
    admin = client.get("/admin/login/?next=/admin/")
    assert admin.status_code == 302
    assert admin["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert _password_sign_in(client, finance, "/admin/login/").status_code == 302
    assert client.get("/admin/").status_code == 302


def test_with_passwords_off_the_provider_is_the_way_in(oidc, world, client, settings):
    settings.PASSWORD_LOGIN = False
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Company sign-in" in page and 'name="password"' not in page


def test_the_break_glass_account_alone_keeps_its_password(world, client, settings):
    settings.PASSWORD_LOGIN_USERS = [world.user("it_admin").username]
    assert _password_sign_in(client, world.user("finance")).status_code == 200
    assert client.get("/").status_code == 302
    response = _password_sign_in(client, world.user("it_admin"))
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
