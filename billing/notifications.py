"""Alerts that reach people, and statements sent on time.

- :func:`notify` is how any alert (quota thresholds today, forecasts and anomalies next)
  reaches a department's channels: one :class:`Delivery` per active channel, unique per
  (channel, event key), so calling it twice for one alert delivers it once.
- :func:`delivery_send` makes one attempt: a 2xx (or a mail the server took) is success;
  an HTTP 408, 429 or 5xx, a timeout, a refused connection or an SMTP 4xx is tried again
  after ``NOTIFICATIONS_RETRY_DELAYS_S`` (1 min, 5 min, 30 min, 2 h by default) and given up
  after the last; any other answer fails at once.
- :func:`statement_finalized` runs after a statement is finalized (by finance or by the
  portal): the statement's PDF is mailed once to the department's managers and billing
  contact, and when the month has no draft left, finance gets the month's digest once.
  :func:`statement_resend` sends it again by hand.
- :func:`sendings_due` (periodic) starts what is due: retries, and statements finalized
  recently whose sending never started (the process died between commit and mail).

Sending happens in Celery tasks (:mod:`billing.tasks`), started after commit.
"""

import datetime as dt
import json
import logging
import smtplib
from dataclasses import dataclass
from decimal import Decimal

import urllib3
from celery import current_app
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from billing import exports, selectors
from billing.models import (
    BillingPeriod,
    Statement,
    StatementStatus,
)
from billing.notifications_http import UrlRefused, post, url_check
from billing.notifications_models import (
    AlertChannel,
    ChannelKind,
    Delivery,
    SendingKind,
    SendingStatus,
    StatementSending,
    WebhookPreset,
)
from core.roles import FINANCE
from departments import selectors as department_selectors
from departments.models import Department

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})


def portal_link(path: str) -> str:
    """``path`` on the portal as people reach it (``PORTAL_URL``)."""
    return settings.PORTAL_URL.rstrip("/") + path


# --- Outcomes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    retry: bool = False
    status_code: int | None = None
    answer: str = ""
    error: str = ""


def _http_outcome(status: int, body: str) -> Outcome:
    answer = f"HTTP {status}" + (f": {body.strip()[:400]}" if body.strip() else "")
    if 200 <= status < 300:
        return Outcome(ok=True, status_code=status, answer=answer)
    retry = status in RETRY_STATUSES or status >= 500 or status < 200
    why = "redirects are not followed" if 300 <= status < 400 else "the receiver refused it"
    return Outcome(
        ok=False, retry=retry, status_code=status, answer=answer, error=f"{answer} ({why})"
    )


def _smtp_code(code: int, message: bytes | str) -> Outcome:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    answer = f"SMTP {code} {text}".strip()[:500]
    # 4xx: the server defers (greylisting, full mailbox, busy); 5xx: it refuses for good.
    return Outcome(ok=False, retry=400 <= code < 500, answer=answer, error=answer)


def _mail(message: EmailMessage) -> Outcome:
    """Send ``message`` through the portal's mail server (``EMAIL_URL``) and say how it went."""
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        outcomes = [_smtp_code(code, text) for code, text in exc.recipients.values()]
        answer = "; ".join(
            f"{rcpt}: {code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
            for rcpt, (code, text) in exc.recipients.items()
        )[:500]
        return Outcome(
            ok=False,
            retry=any(o.retry for o in outcomes),
            answer=answer,
            error=f"Recipients refused: {answer}",
        )
    except smtplib.SMTPResponseException as exc:  # sender or data refused, or other answers
        return _smtp_code(exc.smtp_code, exc.smtp_error)
    except (smtplib.SMTPException, OSError) as exc:  # disconnected, refused, timed out
        return Outcome(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")
    return Outcome(ok=True, answer="accepted by the mail server")


def _next_attempt(attempts: int, now: dt.datetime) -> dt.datetime | None:
    """When to try again after ``attempts`` failed ones; None: give up."""
    delays = settings.NOTIFICATIONS_RETRY_DELAYS_S
    if attempts > len(delays):
        return None
    return now + dt.timedelta(seconds=delays[attempts - 1])


def _enqueue(task: str, pk: int) -> None:
    """Start ``task`` for ``pk`` on a worker (run at once where tasks run eagerly)."""
    current_app.tasks[task].apply_async(args=[pk], queue=settings.NOTIFICATIONS_QUEUE)


def _enqueue_after_commit(task: str, pks) -> None:
    pks = list(pks)
    if pks:
        transaction.on_commit(lambda: [_enqueue(task, pk) for pk in pks])


def _due(now: dt.datetime) -> Q:
    """Pending and due, or claimed by a sender whose lease ran out (it died mid-way)."""
    return Q(status=SendingStatus.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    ) | Q(status=SendingStatus.SENDING, next_attempt_at__lte=now)


def _claim(model, pk: int, now: dt.datetime, counter: str) -> bool:
    """Compare-and-set: this sender takes the row for one attempt; two senders (a task
    delivered twice, the periodic sweep) never both send it."""
    lease = now + dt.timedelta(seconds=settings.NOTIFICATIONS_LEASE_S)
    return bool(
        model.objects.filter(_due(now), pk=pk).update(
            status=SendingStatus.SENDING, next_attempt_at=lease, **{counter: F(counter) + 1}
        )
    )


# --- Channels ---------------------------------------------------------------------------------


def channel_check(channel: AlertChannel) -> None:
    """Raises :class:`UrlRefused` when the channel's webhook URL may not be posted to."""
    if channel.kind == ChannelKind.WEBHOOK:
        url_check(channel.url, allow_private=channel.allow_private)


# --- Alerts ------------------------------------------------------------------------------------


def notify(
    *,
    department: Department | int,
    event_key: str,
    subject: str,
    text: str,
    data: dict | None = None,
    event_type: str | None = None,
) -> list[Delivery]:
    """Deliver an alert about ``department`` to each of its active channels, once per
    channel and ``event_key`` (whatever the number of calls); returns the deliveries made or
    found for it that have not been tried yet. Sends after commit."""
    department_id = department if isinstance(department, int) else department.pk
    event_type = event_type or event_key.split(":", 1)[0]
    channels = list(AlertChannel.objects.filter(department_id=department_id, active=True))
    if not channels:
        return []
    Delivery.objects.bulk_create(
        [
            Delivery(
                channel=channel,
                event_key=event_key[:200],
                event_type=event_type[:60],
                subject=subject[:300],
                text=text,
                data=json.loads(json.dumps(data or {}, default=str)),
            )
            for channel in channels
        ],
        ignore_conflicts=True,
    )
    fresh = list(
        Delivery.objects.filter(
            channel__in=channels,
            event_key=event_key[:200],
            status=SendingStatus.PENDING,
            attempts=0,
        )
    )
    _enqueue_after_commit("billing.deliver", (d.pk for d in fresh))
    return fresh


def quota_alerts_notify(*, alerts, subject: str, text: str) -> Delivery | None:
    """What :mod:`jobs` records as quota alerts (one quota, one period, the thresholds it
    reached at once), delivered to the department's channels as one alert about the highest
    threshold: receiver of ``jobs.signals.quota_alerts_recorded``."""
    if not alerts:
        return None
    top = max(alerts, key=lambda alert: alert.threshold_pct)
    quota = top.quota
    department = quota.department
    data = {
        "department": {
            "slug": department.slug,
            "name": department.name,
            "cost_centre": department.cost_centre,
        },
        "quota": {
            "id": quota.pk,
            "kind": quota.kind,
            "description": str(quota),
            "enforcement": quota.enforcement,
            "job_kind": quota.job_kind or None,
            "gpu_class": quota.gpu_class.slug if quota.gpu_class_id else None,
        },
        "period": top.period,
        "threshold_pct": top.threshold_pct,
        "thresholds_reached": sorted(alert.threshold_pct for alert in alerts),
        "use": str(top.use),
        "limit": str(top.limit),
        "links": {"department": portal_link(f"/departments/{department.slug}/")},
    }
    deliveries = notify(
        department=department,
        event_key=f"quota:{quota.pk}:{top.period}:{top.threshold_pct}",
        event_type="quota.threshold_reached",
        subject=subject,
        text=text,
        data=data,
    )
    return deliveries[0] if deliveries else None


def on_quota_alerts(sender, *, alerts, subject, text, **kwargs) -> None:
    quota_alerts_notify(alerts=alerts, subject=subject, text=text)


# --- Payloads ----------------------------------------------------------------------------------


def _department_link(delivery: Delivery) -> str:
    links = delivery.data.get("links") or {}
    return links.get("department") or portal_link(
        f"/departments/{delivery.channel.department.slug}/"
    )


def webhook_payload(delivery: Delivery, *, now: dt.datetime) -> dict:
    """The JSON a channel's preset sends for ``delivery``."""
    channel = delivery.channel
    link = _department_link(delivery)
    if channel.preset == WebhookPreset.SLACK:
        return {
            "text": f"{delivery.subject}\n{delivery.text}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": delivery.subject[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": delivery.text[:3000]}},
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"<{link}|Open {channel.department} in the portal>",
                        }
                    ],
                },
            ],
        }
    if channel.preset == WebhookPreset.TEAMS:
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {
                                "type": "TextBlock",
                                "text": delivery.subject,
                                "weight": "Bolder",
                                "size": "Medium",
                                "wrap": True,
                            },
                            {"type": "TextBlock", "text": delivery.text, "wrap": True},
                        ],
                        "actions": [
                            {"type": "Action.OpenUrl", "title": "Open in the portal", "url": link}
                        ],
                    },
                }
            ],
        }
    return {
        "type": delivery.event_type,
        "timestamp": now.isoformat(),
        "data": {
            "event_key": delivery.event_key,
            "subject": delivery.subject,
            "text": delivery.text,
            "department": {"slug": channel.department.slug, "name": channel.department.name},
            **delivery.data,
            "links": {"department": link, **(delivery.data.get("links") or {})},
        },
    }


def webhook_request(delivery: Delivery, *, now: dt.datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt, signed as Standard Webhooks sign: ``webhook-id``
    (the same on every attempt), ``webhook-timestamp`` and ``webhook-signature``."""
    body = json.dumps(webhook_payload(delivery, now=now), ensure_ascii=False).encode()
    signature = Webhook(delivery.channel.secret).sign(
        msg_id=delivery.message_id, timestamp=now, data=body
    )
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "gpu-chargeback-portal",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def _attempt(delivery: Delivery, *, now: dt.datetime) -> Outcome:
    channel = delivery.channel
    if not channel.active:
        return Outcome(ok=False, error="The channel was switched off before it could be sent.")
    if channel.kind == ChannelKind.EMAIL:
        if not channel.emails:
            return Outcome(ok=False, error="The channel names no address.")
        link = _department_link(delivery)
        return _mail(
            EmailMessage(
                subject=delivery.subject,
                body=f"{delivery.text}\n\n{link}\n",
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=list(channel.emails),
            )
        )
    body, headers = webhook_request(delivery, now=now)
    try:
        answer = post(channel.url, body=body, headers=headers, allow_private=channel.allow_private)
    except UrlRefused as exc:
        return Outcome(ok=False, error=str(exc))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Outcome(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")
    return _http_outcome(answer.status, answer.body)


def delivery_send(*, delivery_id: int, now: dt.datetime | None = None) -> Delivery | None:
    """One attempt at a delivery that is due; None when it is not (sent, failed, waiting
    for its next attempt, or being sent by someone else). Records the answer, and when the
    next attempt is (or that it failed for good)."""
    now = now or timezone.now()
    if not _claim(Delivery, delivery_id, now, "attempts"):
        return None
    delivery = Delivery.objects.select_related("channel__department").get(pk=delivery_id)
    try:
        outcome = _attempt(delivery, now=now)
    except Exception as exc:  # a bug must not leave it claimed until the lease runs out
        logger.exception("Delivery %s failed unexpectedly", delivery_id)
        outcome = Outcome(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")
    _record(delivery, outcome, now=now, counter=delivery.attempts)
    delivery.last_status_code = outcome.status_code
    delivery.last_answer = outcome.answer[:500]
    delivery.save(
        update_fields=[
            "status",
            "next_attempt_at",
            "sent_at",
            "last_error",
            "last_status_code",
            "last_answer",
        ]
    )
    return delivery


def _record(row, outcome: Outcome, *, now: dt.datetime, counter: int) -> None:
    error_field = "last_error" if isinstance(row, Delivery) else "error"
    if outcome.ok:
        row.status, row.next_attempt_at, row.sent_at = SendingStatus.SUCCEEDED, None, now
        setattr(row, error_field, "")
        return
    setattr(row, error_field, outcome.error or outcome.answer)
    retry_at = _next_attempt(counter, now) if outcome.retry else None
    row.status = SendingStatus.PENDING if retry_at else SendingStatus.FAILED
    row.next_attempt_at = retry_at


def delivery_retry_now(*, delivery: Delivery) -> None:
    """Try a delivery again at once (the admin's action): a failed one gets a new round of
    attempts, a waiting one skips its wait. A sent one is left alone."""
    updated = Delivery.objects.filter(
        pk=delivery.pk, status__in=[SendingStatus.PENDING, SendingStatus.FAILED]
    ).update(
        status=SendingStatus.PENDING,
        next_attempt_at=None,
        attempts=0 if delivery.status == SendingStatus.FAILED else F("attempts"),
    )
    if updated:
        _enqueue_after_commit("billing.deliver", [delivery.pk])


# --- Statements --------------------------------------------------------------------------------


def statement_recipients(statement: Statement) -> list[str]:
    """The department's managers (with an address) and its billing contact."""
    department = statement.department
    addresses = set(department_selectors.manager_emails(department.pk))
    if department.billing_contact_email:
        addresses.add(department.billing_contact_email)
    return sorted(addresses)


def finance_recipients() -> list[str]:
    from django.contrib.auth import get_user_model

    return sorted(
        get_user_model()
        .objects.filter(groups__name=FINANCE, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )


def _sending_create(**fields) -> StatementSending | None:
    """A new sending, or None when the one it may have once already exists."""
    try:
        with transaction.atomic():
            return StatementSending.objects.create(**fields)
    except IntegrityError:
        return None


def statement_finalized(*, statement_id: int) -> list[StatementSending]:
    """After a statement was finalized: its automatic sending, and the month's digest
    when no draft of the month is left; each made once whatever the calls. Returns the
    sendings made now (started after commit)."""
    statement = Statement.objects.select_related("period").get(pk=statement_id)
    if not statement.is_finalized:
        return []
    made = []
    sending = _sending_create(
        kind=SendingKind.STATEMENT, statement=statement, period=statement.period
    )
    if sending is not None:
        made.append(sending)
    period = statement.period
    drafts_left = Statement.objects.filter(period=period, status=StatementStatus.DRAFT).exists()
    if not drafts_left:
        digest = _sending_create(kind=SendingKind.DIGEST, period=period)
        if digest is not None:
            made.append(digest)
    _enqueue_after_commit("billing.send_statement", (s.pk for s in made))
    return made


def statement_resend(*, statement: Statement, user) -> StatementSending:
    """Send a finalized statement again, by hand (the admin's action)."""
    if not statement.is_finalized:
        raise ValueError("Only finalized statements are sent; this one is a draft.")
    sending = StatementSending.objects.create(
        kind=SendingKind.STATEMENT_RESENT,
        statement=statement,
        period=statement.period,
        requested_by=user,
    )
    _enqueue_after_commit("billing.send_statement", [sending.pk])
    return sending


def _statement_message(statement: Statement, recipients: list[str]) -> EmailMessage:
    statement = selectors.statement_with_lines(user=None, pk=statement.pk)
    department = statement.department
    month = f"{statement.period.month:%B %Y}"
    link = portal_link(reverse("billing:statement", args=[statement.pk]))
    message = EmailMessage(
        subject=f"[GPU portal] {department}: GPU chargeback statement for {month}",
        body=(
            f"The GPU chargeback statement of {department} (cost centre "
            f"{department.cost_centre}) for {month} is final: "
            f"{exports.money_text(statement.total, statement.currency)} for "
            f"{statement.gpu_hours} GPU-hours.\n\n"
            f"The statement is attached as a PDF; every line and how it was derived: {link}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach(
        f"statement-{department.slug}-{statement.period.month:%Y-%m}.pdf",
        exports.statement_pdf(statement),
        "application/pdf",
    )
    return message


def _digest_message(period: BillingPeriod, recipients: list[str]) -> EmailMessage:
    statements = list(
        Statement.objects.filter(period=period)
        .select_related("department")
        .order_by("department__name")
    )
    month = f"{period.month:%B %Y}"
    totals: dict[str, Decimal] = {}
    for statement in statements:
        totals[statement.currency] = totals.get(statement.currency, Decimal(0)) + statement.total
    width = max((len(s.department.name) for s in statements), default=10)
    lines = [
        f"{s.department.name:<{width}}  {exports.money_text(s.total, s.currency):>20}  "
        f"{portal_link(reverse('billing:statement', args=[s.pk]))}"
        for s in statements
    ]
    total_text = ", ".join(exports.money_text(v, c) for c, v in sorted(totals.items())) or "0"
    body = (
        f"Every GPU chargeback statement for {month} is final ({len(statements)} "
        "departments).\n\n" + "\n".join(lines) + f"\n\n{'Total':<{width}}  {total_text:>20}\n\n"
        f"The month on the dashboard: "
        f"{portal_link(reverse('billing:dashboard'))}?period={period.month:%Y-%m}\n"
    )
    return EmailMessage(
        subject=f"[GPU portal] GPU chargeback for {month}: {total_text}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )


def sending_send(*, sending_id: int, now: dt.datetime | None = None) -> StatementSending | None:
    """One attempt at a statement mail or digest that is due; None when it is not."""
    now = now or timezone.now()
    if not _claim(StatementSending, sending_id, now, "attempt"):
        return None
    sending = StatementSending.objects.select_related(
        "statement__department", "statement__period", "period"
    ).get(pk=sending_id)
    try:
        if sending.kind == SendingKind.DIGEST:
            recipients = finance_recipients()
            build = lambda: _digest_message(sending.period, recipients)  # noqa: E731
            nobody = "Nobody in the finance group has an e-mail address."
        else:
            recipients = statement_recipients(sending.statement)
            build = lambda: _statement_message(sending.statement, recipients)  # noqa: E731
            nobody = (
                f"Nobody to send it to: {sending.statement.department} has no manager with "
                "an e-mail address and no billing contact."
            )
        sending.recipients = recipients
        outcome = _mail(build()) if recipients else Outcome(ok=False, error=nobody)
    except Exception as exc:
        logger.exception("Sending %s failed unexpectedly", sending_id)
        outcome = Outcome(ok=False, retry=True, error=f"{type(exc).__name__}: {exc}")
    _record(sending, outcome, now=now, counter=sending.attempt)
    sending.save(update_fields=["status", "next_attempt_at", "sent_at", "error", "recipients"])
    return sending


def sending_retry_now(*, sending: StatementSending) -> None:
    updated = StatementSending.objects.filter(
        pk=sending.pk, status__in=[SendingStatus.PENDING, SendingStatus.FAILED]
    ).update(
        status=SendingStatus.PENDING,
        next_attempt_at=None,
        attempt=0 if sending.status == SendingStatus.FAILED else F("attempt"),
    )
    if updated:
        _enqueue_after_commit("billing.send_statement", [sending.pk])


# --- The periodic sweep ------------------------------------------------------------------------


def sendings_due(*, now: dt.datetime | None = None) -> int:
    """Start every delivery and sending that is due (retries, and those whose sender died),
    and the automatic sendings of statements finalized in the last
    ``NOTIFICATIONS_CATCH_UP_H`` hours that never started. Returns how many were started."""
    now = now or timezone.now()
    since = now - dt.timedelta(hours=settings.NOTIFICATIONS_CATCH_UP_H)
    missing = Statement.objects.filter(
        status=StatementStatus.FINALIZED, finalized_at__gte=since
    ).exclude(sendings__kind=SendingKind.STATEMENT)
    for statement_id in missing.values_list("pk", flat=True):
        statement_finalized(statement_id=statement_id)
    deliveries = list(Delivery.objects.filter(_due(now)).values_list("pk", flat=True))
    sendings = list(StatementSending.objects.filter(_due(now)).values_list("pk", flat=True))
    for pk in deliveries:
        _enqueue("billing.deliver", pk)
    for pk in sendings:
        _enqueue("billing.send_statement", pk)
    return len(deliveries) + len(sendings)
