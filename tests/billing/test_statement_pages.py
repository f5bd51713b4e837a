"""The statement page (lines with their derivation, adjustments both ways, the finalize
button, the downloads) and the statements list with its filters."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.models import BillingPeriod, IdlePolicy, LineKind, Statement, StatementStatus
from core import calendar
from tests.billing.conftest import hour
from tests.conftest import client_as
from tests.factories import DepartmentMultiplierFactory, RateCardFactory

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)
NO_SHARE = "\N{EN DASH}"  # what the share column shows on a line that has none


def url(statement) -> str:
    return f"/billing/statements/{statement.pk}/"


def text(response) -> str:
    """The page's text with runs of whitespace as one space."""
    return " ".join(response.content.decode().split())


@pytest.fixture
def march(world, ledger):
    """Marketing in March 2026 (a month that has ended): 1 GPU-hour of A100 at noon and 2
    in the world's nightly off-peak window (× 0.6), with a 0.8 department multiplier;
    training 1 GPU-hour."""
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    DepartmentMultiplierFactory(department=world.marketing, multiplier=Decimal("0.8"))
    ledger.add(at=hour(2, 12), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    # 23:00 UTC is midnight in Berlin, inside the Nightly window of the world.
    ledger.add(at=hour(2, 23), gpu_hours="2", department=world.marketing, gpu_class=world.a100)
    ledger.add(at=hour(2, 12), gpu_hours="1", department=world.training, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    return {
        "marketing": Statement.objects.get(period=period, department=world.marketing),
        "training": Statement.objects.get(period=period, department=world.training),
    }


def test_the_page_shows_each_line_with_its_derivation_and_the_total(world, client, march):
    statement = march["marketing"]
    response = client_as(client, world, "finance").get(url(statement))
    assert response.status_code == 200
    page = text(response)
    assert "<h1>Marketing · March 2026" in page
    assert "Draft" in page
    peak, off_peak = statement.lines.order_by("position")
    assert (peak.amount, off_peak.amount) == (Decimal("1.60"), Decimal("1.92"))
    # Peak: 1 GPU-hour × 2.00 × 1 × 0.8 = 1.60 (list 2.00).
    assert (
        f'{peak.description}</td> <td>A100</td> <td class="num">1.00</td> '
        '<td class="num">2.00 EUR</td> <td class="num">×1</td> <td class="num">×0.8</td> '
        f'<td class="num">{NO_SHARE}</td> <td class="num">2.00 EUR</td> '
        '<td class="num">1.60 EUR</td>'
    ) in page
    # Off-peak: 2 GPU-hours × 2.00 × 0.6 × 0.8 = 1.92 (list 2.40).
    assert (
        f'{off_peak.description}</td> <td>A100</td> <td class="num">2.00</td> '
        '<td class="num">2.00 EUR</td> <td class="num">×0.6</td> <td class="num">×0.8</td> '
        f'<td class="num">{NO_SHARE}</td> <td class="num">2.40 EUR</td> '
        '<td class="num">1.92 EUR</td>'
    ) in page
    assert "× 0.6 off-peak × 0.8 department multiplier" in off_peak.description
    assert '<th colspan="8">Total</th><th class="num">3.52 EUR</th>' in page


def test_a_draft_is_refreshed_from_the_ledger_before_it_is_shown(world, client, ledger, march):
    statement = march["training"]
    ledger.add(at=hour(5, 12), gpu_hours="3", department=world.training, gpu_class=world.a100)
    page = text(client_as(client, world, "other_manager").get(url(statement)))
    assert "<dt>Total</dt><dd><strong>8.00 EUR</strong></dd>" in page
    statement.refresh_from_db()
    assert statement.total == Decimal("8.00")


def test_the_downloads_point_at_the_api(world, client, march):
    statement = march["marketing"]
    page = client_as(client, world, "manager").get(url(statement)).content.decode()
    assert f'href="/api/v1/statements/{statement.pk}/?format=csv"' in page
    assert f'href="/api/v1/statements/{statement.pk}/?format=xlsx"' in page
    assert f'href="/api/v1/statements/{statement.pk}/pdf/"' in page


@pytest.mark.parametrize(
    ("role", "shown"),
    [("finance", True), ("it_admin", False), ("manager", False)],
)
def test_the_finalize_button_is_for_finance_on_a_draft_of_a_month_that_ended(
    world, client, march, role, shown
):
    statement = march["marketing"]
    page = client_as(client, world, role).get(url(statement)).content.decode()
    form = f'<form method="post" action="/billing/statements/{statement.pk}/finalize/"'
    assert (form in page) is shown
    if shown:
        after_form = page.split(form, 1)[1]
        # It asks before it acts: finalizing cannot be undone.
        assert after_form.startswith(
            " onsubmit=\"return confirm('Finalize the March 2026 statement"
        )
        after_tag = after_form.split(">", 1)[1]
        assert after_tag.lstrip().startswith('<input type="hidden" name="csrfmiddlewaretoken"')


def test_finalize_freezes_the_statement_and_a_second_post_shows_why_not(world, client, march):
    statement = march["marketing"]
    client = client_as(client, world, "finance")
    response = client.post(f"{url(statement)}finalize/", follow=True)
    assert response.redirect_chain == [(url(statement), 302)]
    statement.refresh_from_db()
    assert statement.status == StatementStatus.FINALIZED
    assert statement.finalized_by == world.user("finance")
    page = text(response)
    assert "The statement of Marketing for March 2026 is finalized" in page
    assert "finalized " in page and "by Test (fiona)" in page
    assert "Finalize statement" not in page

    again = client.post(f"{url(statement)}finalize/", follow=True)
    page = text(again)
    assert "The statement of Marketing for March 2026 was finalized on" in page
    assert "it never changes" in page
    assert '<ul class="messages"><li class="error">' in page


def test_a_month_that_has_not_ended_cannot_be_finalized(world, client):
    month = calendar.month_of(timezone.now())
    period = services.period_refresh(month=month)
    statement = Statement.objects.get(period=period, department=world.marketing)
    client = client_as(client, world, "finance")
    page = text(client.get(url(statement)))
    assert "Finalize statement" not in page
    assert "has not ended yet: the statement can be finalized once the month is over" in page
    response = client.post(f"{url(statement)}finalize/", follow=True)
    assert f"{period} has not ended yet; its usage is still arriving." in text(response)
    statement.refresh_from_db()
    assert statement.status == StatementStatus.DRAFT


def test_a_statement_finalized_by_the_portal_says_automatically(world, client, march):
    statement = services.statement_finalize(statement=march["training"], user=None)
    page = text(client_as(client, world, "other_manager").get(url(statement)))
    assert "automatically, after the grace period" in page


def test_adjustments_point_both_ways(world, client, ledger, march):
    original = services.statement_finalize(statement=march["marketing"], user=world.user("finance"))
    services.adjustment_create(
        original=original,
        amount=Decimal("-1.25"),
        reason="Render farm outage credit",
        user=world.user("finance"),
    )
    carrier = Statement.objects.get(period__month=APRIL, department=world.marketing)
    client = client_as(client, world, "manager")

    page = text(client.get(url(carrier)))
    assert "Adjustments carried by this statement" in page
    assert f'<a href="{url(original)}">March 2026</a>' in page
    assert "Render farm outage credit" in page
    assert "-1.25 EUR" in page
    # The line on April's statement links back to March's too.
    assert f' · <a href="{url(original)}">original: March 2026</a>' in page
    assert '<th colspan="8">Total</th><th class="num">-1.25 EUR</th>' in page

    page = text(client.get(url(original)))
    assert "Adjustments to this statement" in page
    assert f'<a href="{url(carrier)}">April 2026</a>' in page
    assert "Render farm outage credit" in page


# --- The list -------------------------------------------------------------------------------


def test_the_list_filters_by_month_department_and_status(world, client, march):
    services.statement_finalize(statement=march["training"], user=None)
    client = client_as(client, world, "finance")

    page = text(client.get("/billing/statements/", {"period": "2026-03"}))
    assert f'href="{url(march["marketing"])}">3.52 EUR</a>' in page
    assert f'href="{url(march["training"])}">2.00 EUR</a>' in page

    page = text(client.get("/billing/statements/", {"status": "finalized"}))
    assert url(march["training"]) in page
    assert url(march["marketing"]) not in page

    page = text(client.get("/billing/statements/", {"department": "marketing"}))
    assert url(march["marketing"]) in page
    assert url(march["training"]) not in page


def test_a_manager_lists_only_their_departments_statements(world, client, march):
    response = client_as(client, world, "manager").get("/billing/statements/")
    page = response.content.decode()
    assert url(march["marketing"]) in page
    assert url(march["training"]) not in page
    assert "Training" not in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "2026-3x"}, "“2026-3x” is not a month; give it as YYYY-MM"),
        ({"status": "paid"}, "Select a valid choice. paid is not one of the available choices."),
        ({"department": "nope"}, "Select a valid choice."),
    ],
)
def test_a_filter_that_makes_no_sense_answers_400_with_the_reason(
    world, client, march, query, message
):
    response = client_as(client, world, "finance").get("/billing/statements/", query)
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert "No statement matches." in page


def test_another_departments_slug_reads_as_unknown_to_a_manager(world, client, march):
    response = client_as(client, world, "manager").get(
        "/billing/statements/", {"department": "training"}
    )
    assert response.status_code == 400
    assert url(march["training"]) not in response.content.decode()


def test_a_draft_on_the_list_shows_its_current_total(world, client, ledger, march):
    ledger.add(at=hour(9, 12), gpu_hours="1", department=world.training, gpu_class=world.a100)
    page = text(client_as(client, world, "finance").get("/billing/statements/"))
    assert re.search(rf'href="{url(march["training"])}">4.00 EUR</a>', page)


def test_a_share_of_idle_capacity_shows_the_share_it_was_split_by(world, client, ledger):
    RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    BillingPeriod.objects.create(month=MARCH, idle_policy=IdlePolicy.SHARED)
    ledger.add(at=hour(2, 12), gpu_hours="3", department=world.marketing, gpu_class=world.a100)
    ledger.add(at=hour(2, 12), gpu_hours="1", department=world.training, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=world.marketing)
    idle = statement.lines.get(kind=LineKind.IDLE)
    assert idle.share == Decimal("0.75")

    page = text(client_as(client, world, "manager").get(url(statement)))
    amount = f"{idle.amount:,.2f}"
    assert re.search(
        rf"Share of idle capacity: 3.00 of 4.00 GPU-hours used of the fleet \(75.00 %\)</td>"
        rf'.*?<td class="num">0.75</td> <td class="num">{amount} EUR</td> '
        rf'<td class="num">{amount} EUR</td>',
        page,
    )
    total = f"{statement.total:,.2f}"
    assert statement.total == Decimal("6.00") + idle.amount
    assert f'<th colspan="8">Total</th><th class="num">{total} EUR</th>' in page
