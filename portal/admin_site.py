from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

from portal import roles


class PortalAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, letting in whoever may use the admin by role.

    Django's own form insists on ``is_staff``; finance and IT staff are let in by their group
    instead, so that nobody has to remember to set a second flag.
    """

    def confirm_login_allowed(self, user) -> None:
        if not user.is_active:
            raise forms.ValidationError(self.error_messages["inactive"], code="inactive")
        if not roles.can_use_admin(user):
            raise forms.ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class PortalAdminSite(admin.AdminSite):
    """The admin, open to the finance and it-admin groups without a separate staff flag.

    What each of them may change inside it is decided by model permissions (finance mostly
    views, IT edits configuration), see :mod:`portal.roles`.
    """

    site_header = "GPU chargeback portal: administration"
    site_title = "GPU portal admin"
    index_title = "Configuration and billing"
    site_url = "/"
    login_form = PortalAdminAuthenticationForm

    def has_permission(self, request) -> bool:
        return roles.can_use_admin(request.user)
