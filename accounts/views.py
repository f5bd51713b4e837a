"""The sign-in and sign-out pages, and the page of someone signed in with nothing to see."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts import backends, oidc, selectors


def sign_in_context() -> dict:
    return {
        "oidc_enabled": oidc.enabled(),
        "provider_name": settings.OIDC_PROVIDER_NAME,
        "password_login": backends.password_login_enabled(),
        "password_break_glass_only": bool(settings.PASSWORD_LOGIN_USERS),
    }


class LoginView(auth_views.LoginView):
    """The portal's sign-in page: the identity provider's button where one is set up, and
    the password form while passwords are on (``PASSWORD_LOGIN``)."""

    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **sign_in_context()}

    def post(self, request, *args, **kwargs):
        if not backends.password_login_enabled():
            messages.error(
                request,
                "Password sign-in is turned off here. "
                + (
                    f"Sign in with {settings.OIDC_PROVIDER_NAME}."
                    if oidc.enabled()
                    else "Ask IT how to sign in."
                ),
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().post(request, *args, **kwargs)


def admin_login(request, admin_site_login):
    """The admin's sign-in: the admin's own page while passwords are on (with the
    provider's button beside it), the portal's sign-in page when they are off."""
    if not backends.password_login_enabled():
        next_url = request.GET.get("next") or reverse("admin:index")
        return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
    return admin_site_login(request, extra_context=sign_in_context())


@require_POST
def logout_view(request):
    """Signs out of the portal, and out of the identity provider where the person signed
    in there and it offers sign-out (RP-initiated logout)."""
    target = oidc.provider_logout_url(request)
    logout(request)
    return HttpResponseRedirect(target)


def no_access(request):
    """What someone sees who is signed in and holds no role: who they are, the groups the
    provider sent, and whom to ask."""
    groups = selectors.last_groups(user=request.user)
    return render(
        request,
        "accounts/no_access.html",
        {"provider_groups": groups, "provider_name": settings.OIDC_PROVIDER_NAME},
    )
