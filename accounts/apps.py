from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Sign-in and API tokens"

    def ready(self) -> None:
        from django.contrib import admin

        # The OpenAPI schema's description of the bearer scheme.
        from accounts import schema  # noqa: F401

        # The admin's sign-in page offers the identity provider's button too.
        admin.site.login_template = "accounts/admin_login.html"
