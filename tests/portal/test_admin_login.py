"""Finance and IT staff sign in to the admin with their password; nobody needs ``is_staff``."""

import pytest

from tests.factories import PASSWORD


@pytest.mark.parametrize(
    ("role", "lets_in"),
    [
        ("finance", True),
        ("it_admin", True),
        ("manager", False),
        ("member", False),
    ],
)
def test_admin_login_form_lets_in_by_role_not_staff_flag(world, client, role, lets_in):
    user = world.user(role)
    assert not user.is_staff
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": user.username, "password": PASSWORD, "next": "/admin/"},
    )
    if lets_in:
        assert response.status_code == 302
        assert response["Location"] == "/admin/"
        assert client.get("/admin/").status_code == 200
    else:
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()
        assert client.get("/admin/").status_code == 302


def test_admin_login_refuses_a_wrong_password_for_finance(world, client):
    response = client.post(
        "/admin/login/", {"username": world.user("finance").username, "password": "nope"}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
