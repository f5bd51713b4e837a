"""A finalized statement reaches the department's managers and billing contact with its
PDF, once, through a real SMTP server; finance gets the month's digest once every
statement of the month is final; a server that defers is tried again, one that refuses
fails, and every sending is recorded."""

import datetime as dt

import pytest

from billing import notifications, services
from billing.models import Statement, StatementSending
from tests import factories
from tests.billing.conftest import hour

pytestmark = pytest.mark.usefixtures("tasks_run_at_once")

MARCH = dt.date(2026, 3, 1)
AFTER_MARCH = dt.datetime(2026, 4, 10, tzinfo=dt.UTC)


@pytest.fixture
def march(world, ledger, settings):
    settings.NOTIFICATIONS_RETRY_DELAYS_S = [60, 300]
    world.marketing.billing_contact_email = "cc-4100@example.com"
    world.marketing.save()
    factories.UserFactory(username="felix", groups=["finance"])
    for department in (world.marketing, world.training):
        ledger.add(at=hour(2, 10), gpu_hours="3", department=department, gpu_class=world.a100)
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour="2.00")
    services.period_refresh(month=MARCH)
    return {s.department.slug: s for s in Statement.objects.filter(period__month=MARCH)}


def finalize(statement, captured):
    with captured(execute=True):
        services.statement_finalize(statement=statement, user=None, now=AFTER_MARCH)


def test_the_statement_arrives_with_its_pdf_once(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    finalize(march["marketing"], django_capture_on_commit_callbacks)

    (mail,) = smtp_server.mails
    assert sorted(mail.recipients) == ["cc-4100@example.com", "mara@example.com"]
    assert "Marketing" in mail.message["Subject"] and "March 2026" in mail.message["Subject"]
    (attachment,) = list(mail.message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "statement-marketing-2026-03.pdf"
    assert attachment.get_content().startswith(b"%PDF")
    assert "6.00 EUR" in mail.message.get_body(("plain",)).get_content()
    sending = StatementSending.objects.get(kind="statement")
    assert (sending.status, sending.attempt, sending.recipients) == (
        "succeeded",
        1,
        ["cc-4100@example.com", "mara@example.com"],
    )

    # Called again, swept, or the sweep a minute later: nothing more is sent.
    with django_capture_on_commit_callbacks(execute=True):
        notifications.statement_finalized(statement_id=march["marketing"].pk)
        notifications.sendings_due(now=AFTER_MARCH + dt.timedelta(minutes=1))
    assert len(smtp_server.mails) == 1
    assert StatementSending.objects.filter(kind="statement").count() == 1


def test_finance_gets_the_digest_when_the_month_is_final(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    finalize(march["marketing"], django_capture_on_commit_callbacks)
    assert not StatementSending.objects.filter(kind="digest").exists()  # training is a draft
    finalize(march["training"], django_capture_on_commit_callbacks)

    digests = [m for m in smtp_server.mails if "fiona@example.com" in m.recipients]
    (digest,) = digests
    assert sorted(digest.recipients) == ["felix@example.com", "fiona@example.com"]
    body = digest.message.get_body(("plain",)).get_content()
    assert "Marketing" in body and "Training" in body
    assert "12.00 EUR" in body  # the month's total
    assert f"/billing/statements/{march['training'].pk}/" in body
    assert StatementSending.objects.filter(kind="digest").get().status == "succeeded"


def test_finalize_due_sends_the_statements_too(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert services.statements_finalize_due(now=AFTER_MARCH) == 2
    assert len(smtp_server.mails) == 3  # two statements and the digest
    assert StatementSending.objects.filter(status="succeeded").count() == 3


def test_a_deferring_server_is_tried_again_and_it_is_logged(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    smtp_server.refuse_data = ["451 4.3.0 Mailbox busy, try again later"]
    finalize(march["marketing"], django_capture_on_commit_callbacks)
    sending = StatementSending.objects.get(kind="statement")
    assert (sending.status, sending.attempt) == ("pending", 1)
    assert "451" in sending.error and "try again later" in sending.error
    assert smtp_server.mails == []

    # Not due yet; a minute later the sweep sends it.
    assert notifications.sendings_due(now=sending.created_at) == 0
    with django_capture_on_commit_callbacks(execute=True):
        notifications.sending_send(
            sending_id=sending.pk, now=sending.next_attempt_at + dt.timedelta(seconds=1)
        )
    sending.refresh_from_db()
    assert (sending.status, sending.attempt, sending.error) == ("succeeded", 2, "")
    assert len(smtp_server.mails) == 1


def test_a_refusing_server_fails_the_sending_and_says_why(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    world.marketing.billing_contact_email = ""
    world.marketing.save()
    smtp_server.refuse_rcpt = ["550 5.1.1 No such user"]
    finalize(march["marketing"], django_capture_on_commit_callbacks)
    sending = StatementSending.objects.get(kind="statement")
    assert (sending.status, sending.attempt, sending.next_attempt_at) == ("failed", 1, None)
    assert "550" in sending.error and "No such user" in sending.error
    assert smtp_server.refused == ["550 5.1.1 No such user"]


def test_a_statement_is_re_sent_only_by_hand(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    finalize(march["marketing"], django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        notifications.statement_resend(
            statement=Statement.objects.get(pk=march["marketing"].pk), user=world.user("finance")
        )
    assert len(smtp_server.mails) == 2
    kinds = sorted(StatementSending.objects.values_list("kind", "status", "requested_by__username"))
    assert kinds == [("resent", "succeeded", "fiona"), ("statement", "succeeded", None)]


def test_a_department_nobody_can_read_it_for_fails_with_a_reason(
    world, march, smtp_server, django_capture_on_commit_callbacks
):
    finalize(march["training"], django_capture_on_commit_callbacks)
    world.training.memberships.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        notifications.statement_resend(
            statement=Statement.objects.get(pk=march["training"].pk), user=None
        )
    failed = StatementSending.objects.get(kind="resent")
    assert failed.status == "failed" and "no manager with an e-mail" in failed.error
