"""Where alerts and statements go, and the record of every sending.

An :class:`AlertChannel` is one more place a department's alerts reach: extra e-mail
addresses, or a webhook (signed as Standard Webhooks sign, with a generic JSON payload or one
Slack or Microsoft Teams accept). Each alert makes one :class:`Delivery` per channel, unique
per (channel, event key), so an alert is never delivered twice to one place. Each statement
mail and each month's digest for finance is a :class:`StatementSending`; the automatic one is
unique per statement (per month for the digest), so the portal sends it once; a re-send by
hand is a sending of its own.

Re-exported by :mod:`billing.models` (Django finds them there).
"""

import base64
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from departments.models import Department


def webhook_secret_new() -> str:
    """A new signing secret as Standard Webhooks write it: ``whsec_`` and 32 random bytes
    in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class ChannelKind(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class WebhookPreset(models.TextChoices):
    GENERIC = "generic", "Generic JSON"
    SLACK = "slack", "Slack (incoming webhook)"
    TEAMS = "teams", "Microsoft Teams (incoming webhook or workflow)"


class SendingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Sent"
    FAILED = "failed", "Failed"


class AlertChannel(models.Model):
    """One more place a department's alerts go, besides its managers' mailboxes."""

    Kind = ChannelKind
    Preset = WebhookPreset

    department = models.ForeignKey(
        Department, on_delete=models.CASCADE, related_name="alert_channels"
    )
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    emails = models.JSONField(
        default=list, blank=True, help_text="E-mail channels: the addresses, a list."
    )
    url = models.URLField(
        "webhook URL",
        max_length=500,
        blank=True,
        help_text="Webhooks: http(s) only; addresses in private, loopback, link-local or "
        "reserved ranges are refused (checked again at every sending).",
    )
    preset = models.CharField(
        max_length=10,
        choices=WebhookPreset.choices,
        default=WebhookPreset.GENERIC,
        help_text="Webhooks: the shape of the payload.",
    )
    secret = models.CharField(
        max_length=100,
        blank=True,
        default=webhook_secret_new,
        help_text="Webhooks: the Standard Webhooks signing secret, shown once when made.",
    )
    allow_private = models.BooleanField(
        "may reach private addresses",
        default=False,
        help_text="Set by IT only: the webhook may reach addresses inside the company "
        "network (private, loopback ranges).",
    )
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["department__name", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="alert_channel_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind=ChannelKind.EMAIL) | ~Q(url=""),
                name="webhook_channel_has_a_url",
                violation_error_message="A webhook needs its URL.",
            ),
            models.UniqueConstraint(
                fields=["department", "name"], name="one_alert_channel_name_per_department"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.department}: {self.name}"


class Delivery(models.Model):
    """One alert on its way to one channel: sent by a Celery task, tried again later (with
    growing waits) while the other end answers that it cannot take it now."""

    Status = SendingStatus

    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    event_key = models.CharField(
        max_length=200,
        help_text="What the alert is about, e.g. quota:12:2026-11:80; one delivery per "
        "channel and key.",
    )
    event_type = models.CharField(max_length=60)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=SendingStatus.choices, default=SendingStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField("last HTTP status", null=True, blank=True)
    last_answer = models.CharField(
        max_length=500, blank=True, help_text="The HTTP or SMTP answer of the last attempt."
    )
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "event_key"], name="one_delivery_per_channel_and_event"
            ),
            models.CheckConstraint(
                condition=Q(status__in=SendingStatus.values), name="delivery_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_key} to {self.channel}"

    @property
    def message_id(self) -> str:
        """The ``webhook-id``: the same on every attempt, so a receiver can tell a retry."""
        return f"msg_gpuportal_{self.pk}"


class SendingKind(models.TextChoices):
    STATEMENT = "statement", "Statement (automatic)"
    STATEMENT_RESENT = "resent", "Statement (re-sent by hand)"
    DIGEST = "digest", "Month's digest for finance"


class StatementSending(models.Model):
    """A statement mailed with its PDF to the department's managers and billing contact,
    or a month's digest mailed to finance; retried while the mail server defers it."""

    Kind = SendingKind
    Status = SendingStatus

    kind = models.CharField(max_length=10, choices=SendingKind.choices)
    statement = models.ForeignKey(
        "billing.Statement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sendings",
    )
    period = models.ForeignKey("billing.BillingPeriod", on_delete=models.PROTECT, related_name="+")
    recipients = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=10, choices=SendingStatus.choices, default=SendingStatus.PENDING
    )
    attempt = models.PositiveSmallIntegerField(default=0, help_text="Attempts made so far.")
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["statement"],
                condition=Q(kind=SendingKind.STATEMENT),
                name="statement_sent_once_automatically",
            ),
            models.UniqueConstraint(
                fields=["period"],
                condition=Q(kind=SendingKind.DIGEST),
                name="one_digest_per_month",
            ),
            models.CheckConstraint(
                condition=Q(kind=SendingKind.DIGEST) | Q(statement__isnull=False),
                name="statement_sending_names_its_statement",
            ),
            models.CheckConstraint(
                condition=Q(status__in=SendingStatus.values), name="statement_sending_status_valid"
            ),
        ]

    def __str__(self) -> str:
        what = self.statement if self.statement_id else f"digest of {self.period}"
        return f"{self.get_kind_display()}: {what}"
