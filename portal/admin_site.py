from django.contrib import admin

from portal import roles


class PortalAdminSite(admin.AdminSite):
    """The admin, open to the finance and it-admin groups without a separate staff flag.

    What each of them may change inside it is decided by model permissions (finance mostly
    views, IT edits configuration), see :mod:`portal.roles`.
    """

    site_header = "GPU chargeback portal: administration"
    site_title = "GPU portal admin"
    index_title = "Configuration and billing"
    site_url = "/"

    def has_permission(self, request) -> bool:
        return roles.can_use_admin(request.user)
