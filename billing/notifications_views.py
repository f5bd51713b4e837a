"""A department's alert channels in the browser (``/departments/<slug>/alerts/``).

The page reads and writes what the API does (:mod:`billing.notifications_api`), with its
scoping and its serializer, so a refusal reads the same in both: finance and IT read every
department's channels, a department's managers theirs; IT and the managers write them
(finance reads only: 403 on a POST). A department the user may not manage or read, a
member's included, answers 404 like one that does not exist.

A webhook's signing secret is shown once: on the page the creation leads to, never again.
The session carries only which channel's secret is due, never the secret itself.
"""

from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from billing.notifications_api import (
    AlertChannelSerializer,
    deliveries_for_user,
    managed_department_ids,
)
from billing.notifications_models import AlertChannel, ChannelKind, WebhookPreset
from core import roles
from departments.models import Department

DELIVERIES_SHOWN = 50
NEW_WEBHOOK_SESSION_KEY = "alert_channel_secret_due"  # session key: the pk of the channel just made


def alert_departments_for_user(*, user) -> QuerySet[Department]:
    """The departments whose alert channels ``user`` may read: every one for finance and
    IT, the ones they manage for a manager, none for anyone else."""
    if roles.sees_all_departments(user):
        return Department.objects.all()
    return Department.objects.filter(pk__in=managed_department_ids(user))


def writes_channels(user, department: Department) -> bool:
    """IT writes every department's channels, a manager their departments'."""
    return roles.is_it_admin(user) or department.pk in managed_department_ids(user)


class AlertChannelForm(forms.Form):
    """What the page asks for. It only reads the text typed in; the API's serializer
    decides what is valid (so a refusal says what the API says)."""

    name = forms.CharField(required=False, help_text="How you recognise it, e.g. ops pager.")
    kind = forms.CharField(
        required=False,
        initial=ChannelKind.EMAIL,
        widget=forms.RadioSelect(choices=ChannelKind.choices),
    )
    emails = forms.CharField(
        label="E-mail addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="E-mail channels: one address a line, or separated by commas.",
    )
    url = forms.CharField(
        label="Webhook URL",
        required=False,
        widget=forms.URLInput(),
        help_text="Webhooks: http(s), reaching a public address.",
    )
    preset = forms.CharField(
        label="Payload",
        required=False,
        initial=WebhookPreset.GENERIC,
        widget=forms.Select(choices=WebhookPreset.choices),
        help_text="Webhooks: the shape of the JSON sent.",
    )
    allow_private = forms.BooleanField(
        label="May reach private addresses (IT only)", required=False
    )

    def __init__(self, *args, it_admin: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not it_admin:
            del self.fields["allow_private"]

    def api_data(self, department: Department) -> dict:
        """The request body the API would get for this channel."""
        data = self.cleaned_data
        body = {"department": department.slug, "name": data["name"], "kind": data["kind"]}
        if data["kind"] != ChannelKind.WEBHOOK:
            body["emails"] = [
                address for address in data["emails"].replace(",", " ").split() if address
            ]
        if data["kind"] != ChannelKind.EMAIL:
            body["url"] = data["url"]
            if data["preset"]:  # none chosen: the API's default
                body["preset"] = data["preset"]
        if "allow_private" in self.fields:
            body["allow_private"] = data["allow_private"]
        return body

    def add_api_errors(self, errors: dict) -> None:
        """The serializer's refusals as this form's errors, in its words."""
        for field, messages_ in errors.items():
            if isinstance(messages_, dict):  # a list field: the refusals per item
                emails = self.cleaned_data.get("emails", "").replace(",", " ").split()
                messages_ = [
                    f"{emails[int(i)] if str(i).isdigit() and int(i) < len(emails) else i}: {m}"
                    for i, item in messages_.items()
                    for m in item
                ]
            target = field if field in self.fields else None
            for message in messages_:
                self.add_error(target, str(message))


def _department(request, slug: str) -> Department:
    return get_object_or_404(alert_departments_for_user(user=request.user), slug=slug)


def _target(channel: AlertChannel) -> str:
    """Where it goes, as the page may show it: a webhook's host only (its path and query
    often hold a token), an e-mail channel's addresses."""
    if channel.kind == ChannelKind.WEBHOOK:
        try:
            return urlsplit(channel.url).hostname or ""
        except ValueError:
            return ""
    return ", ".join(channel.emails)


@login_required
def alert_channels(request, slug: str):
    """The department's alert channels, the form that adds one (IT and managers) and its
    latest deliveries. A POST adds a channel; a webhook's secret is shown once, on the
    page it leads to."""
    user = request.user
    department = _department(request, slug)
    can_write = writes_channels(user, department)
    it_admin = roles.is_it_admin(user)
    if request.method == "POST":
        if not can_write:
            raise PermissionDenied("Finance reads alert channels; managers and IT change them.")
        form = AlertChannelForm(request.POST, it_admin=it_admin)
        if form.is_valid():
            serializer = AlertChannelSerializer(
                data=form.api_data(department), context={"request": request}
            )
            if serializer.is_valid():
                channel = serializer.save(created_by=user)  # as the API's create does
                messages.success(request, f"The channel {channel.name} is added.")
                if channel.kind == ChannelKind.WEBHOOK:
                    request.session[NEW_WEBHOOK_SESSION_KEY] = channel.pk
                return redirect("departments:alerts", slug=department.slug)
            form.add_api_errors(serializer.errors)
    else:
        form = AlertChannelForm(it_admin=it_admin)

    channels = department.alert_channels.select_related("created_by").order_by("name")
    new_channel = None
    due = request.session.pop(NEW_WEBHOOK_SESSION_KEY, None) if request.method == "GET" else None
    if due is not None:
        new_channel = channels.filter(pk=due, kind=ChannelKind.WEBHOOK).first()
    response = render(
        request,
        "billing/alert_channels.html",
        {
            "department": department,
            "can_write": can_write,
            "form": form,
            "channels": [(channel, _target(channel)) for channel in channels],
            "new_channel": new_channel,
            "deliveries": deliveries_for_user(user=user)
            .filter(channel__department=department)
            .order_by("-created_at", "-pk")[:DELIVERIES_SHOWN],
            "deliveries_shown": DELIVERIES_SHOWN,
        },
    )
    if new_channel is not None:
        add_never_cache_headers(response)  # the secret stays in no cache
    return response


CHANNEL_ACTIONS = ("activate", "deactivate", "delete")


@login_required
@require_POST
def alert_channel_change(request, slug: str, pk: int):
    """Switch one of the department's channels on or off, or delete it (IT and its
    managers; finance 403; anyone else 404)."""
    user = request.user
    department = _department(request, slug)
    if not writes_channels(user, department):
        raise PermissionDenied("Finance reads alert channels; managers and IT change them.")
    channel = get_object_or_404(department.alert_channels, pk=pk)
    action = request.POST.get("action")
    if action == "delete":
        channel.delete()  # as the API's delete does; its deliveries go with it
        messages.success(request, f"The channel {channel.name} is deleted.")
    elif action == "activate":
        # Through the API's serializer: a webhook's URL is checked again before it sends.
        serializer = AlertChannelSerializer(
            channel, data={"active": True}, partial=True, context={"request": request}
        )
        if serializer.is_valid():
            serializer.save()
            messages.success(request, f"The channel {channel.name} is active.")
        else:
            refusals = [str(m) for ms in serializer.errors.values() for m in ms]
            messages.error(request, f"The channel {channel.name} stays off: {' '.join(refusals)}")
    elif action == "deactivate":
        # Nothing to check: switching a channel off must work even where its URL no
        # longer resolves.
        channel.active = False
        channel.save(update_fields=["active", "updated_at"])
        messages.success(request, f"The channel {channel.name} is switched off.")
    else:
        messages.error(request, f"Choose one of {', '.join(CHANNEL_ACTIONS)}.")
    return redirect("departments:alerts", slug=department.slug)
