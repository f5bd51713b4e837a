"""Password sign-in, which the portal keeps for a break-glass account and can turn off.

Every door that takes a password (the portal's sign-in page, the admin's and the API token
endpoint) asks Django's ``authenticate()``, so this one backend decides for all of them.
It stays in ``AUTHENTICATION_BACKENDS`` even with passwords off, because Django asks the
same backends for a user's permissions.
"""

from django.conf import settings
from django.contrib.auth.backends import ModelBackend


def password_login_enabled() -> bool:
    return settings.PASSWORD_LOGIN


def password_login_allowed(username: str | None) -> bool:
    """Whether ``username`` may sign in with a password: never with ``PASSWORD_LOGIN=0``;
    with ``PASSWORD_LOGIN_USERS`` set, only the accounts it names (the break-glass ones)."""
    if not settings.PASSWORD_LOGIN:
        return False
    allowed = settings.PASSWORD_LOGIN_USERS
    return not allowed or (username or "") in allowed


class PasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get("username")
        if not password_login_allowed(username):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
