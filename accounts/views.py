"""The sign-in and sign-out pages, and the page of someone signed in with nothing to see."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts import backends, oidc, selectors, tokens
from accounts.forms import ApiTokenForm


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


# --- Your API tokens ---------------------------------------------------------------------


@login_required
def api_tokens(request):
    """The signed-in person's own API tokens and the form that makes one. A POST makes it
    and answers this page with its secret, shown this once (it is kept nowhere, only its
    hash), in an answer no cache keeps."""
    new_token = None
    if request.method == "POST":
        form = ApiTokenForm(request.POST)
        if form.is_valid():
            new_token = tokens.api_token_create(user=request.user, **form.cleaned_data)
            form = ApiTokenForm()
    else:
        form = ApiTokenForm()
    response = render(
        request,
        "accounts/api_tokens.html",
        {
            "form": form,
            "tokens": selectors.api_tokens_of(user=request.user).select_related("revoked_by"),
            "new_token": new_token,
            "example_url": request.build_absolute_uri(reverse("departments-list")),
        },
    )
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def api_token_revoke(request, pk: int):
    """Revokes one of the signed-in person's own tokens (anyone else's answers 404)."""
    token = get_object_or_404(selectors.api_tokens_of(user=request.user), pk=pk)
    if token.revoked_at is not None:
        messages.info(request, f"The token {token.name} ({token.prefix}…) was already revoked.")
    else:
        tokens.api_token_revoke(token=token, by=request.user)
        messages.success(
            request,
            f"The token {token.name} ({token.prefix}…) is revoked: the API refuses it from now on.",
        )
    return redirect("accounts:tokens")
