import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpResponseRedirect

from core import roles
from core.filters import EARLIEST, LATEST


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
    views, IT edits configuration), see :mod:`core.roles`.
    """

    site_header = "GPU chargeback portal: administration"
    site_title = "GPU portal admin"
    index_title = "Configuration and billing"
    site_url = "/"
    login_form = PortalAdminAuthenticationForm

    def has_permission(self, request) -> bool:
        return roles.can_use_admin(request.user)


def date_hierarchy_problem(params, field: str) -> str | None:
    """Why the date drill-down of ``params`` (``<field>__year``, ``__month``, ``__day``)
    cannot be shown, or ``None`` when it can: a date that is no date, or a year outside
    the instants a query may name (:data:`core.filters.EARLIEST` to ``LATEST``), where
    the admin's own arithmetic (the year or month after it) leaves what a date holds."""
    year = params.get(f"{field}__year")
    if year is None:
        return None
    month, day = params.get(f"{field}__month"), params.get(f"{field}__day")
    asked = "-".join(part for part in (year, month, day) if part is not None)
    try:
        first = dt.date(int(year), int(month or 1), int(day or 1))
    except (ValueError, OverflowError):
        return f"“{asked}” cannot be shown: it is not a date."
    if not EARLIEST.year <= first.year < LATEST.year:
        return f"{asked} cannot be shown: pick a year from {EARLIEST.year} to {LATEST.year - 1}."
    return None


class DateHierarchyInRange:
    """A model admin mixin: a date drill-down that :func:`date_hierarchy_problem` refuses
    sends the list back without it, with the reason as a message, instead of failing."""

    def changelist_view(self, request, extra_context=None):
        field = self.date_hierarchy
        problem = date_hierarchy_problem(request.GET, field) if field else None
        if problem is None:
            return super().changelist_view(request, extra_context)
        messages.error(request, problem)
        kept = request.GET.copy()
        for part in ("year", "month", "day"):
            kept.pop(f"{field}__{part}", None)
        return HttpResponseRedirect(f"{request.path}?{kept.urlencode()}" if kept else request.path)


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Records the portal writes itself (the ledger, alerts, drift): the admin shows them and
    lets nobody add, change or delete one."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
