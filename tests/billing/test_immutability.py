"""A finalized statement never changes: not through the models (save, delete, bulk update
and delete of it or of its lines), not through the admin (its pages are read-only, a
change or delete is refused), whoever asks."""

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services
from billing.models import FrozenError, Statement, StatementLine, StatementStatus
from tests import factories
from tests.billing.conftest import hour
from tests.billing.test_api_statements import bill_march

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def finalized(world, ledger) -> Statement:
    """Marketing's March statement, finalized with one usage line of 3 A100 hours."""
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("2.00"))
    ledger.add(at=hour(2, 10), gpu_hours="3", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    statement = Statement.objects.get(period=period, department=world.marketing)
    return services.statement_finalize(statement=statement, user=world.user("finance"))


def _as_stored(statement: Statement) -> tuple:
    stored = Statement.objects.get(pk=statement.pk)
    lines = list(
        StatementLine.objects.filter(statement=statement)
        .order_by("pk")
        .values_list("pk", "kind", "gpu_seconds", "unit_price", "amount", "description")
    )
    return stored.status, stored.total, stored.gpu_hours, stored.finalized_at, lines


def test_the_fixture_is_a_finalized_statement_with_a_line(finalized):
    status, total, gpu_hours, _, lines = _as_stored(finalized)
    assert (status, total, gpu_hours) == (StatementStatus.FINALIZED, Decimal("6.00"), 3)
    assert [(kind, amount) for _, kind, _, _, amount, _ in lines] == [("usage", Decimal("6.00"))]


def test_saving_a_finalized_statement_is_refused(finalized):
    before = _as_stored(finalized)
    finalized.total = Decimal("0.01")
    with pytest.raises(FrozenError, match="finalized; it never changes"):
        finalized.save()
    # Even turning it back into a draft is a change.
    finalized.status = StatementStatus.DRAFT
    with pytest.raises(FrozenError):
        finalized.save(update_fields=["status"])
    assert _as_stored(finalized) == before


def test_deleting_a_finalized_statement_is_refused(finalized):
    before = _as_stored(finalized)
    with pytest.raises(FrozenError, match="cannot be deleted"):
        finalized.delete()
    assert _as_stored(finalized) == before


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_bulk_changes_that_touch_a_finalized_statement_are_refused(finalized, operation):
    before = _as_stored(finalized)
    draft = Statement.objects.get(period=finalized.period, department__slug="training")
    # A query set that holds a draft as well: nothing at all is changed.
    both = Statement.objects.filter(pk__in=[finalized.pk, draft.pk])
    with pytest.raises(FrozenError):
        both.update(total=Decimal("99.00")) if operation == "update" else both.delete()
    assert _as_stored(finalized) == before
    assert Statement.objects.get(pk=draft.pk).total == draft.total


def test_a_line_of_a_finalized_statement_cannot_be_saved_or_deleted(finalized):
    before = _as_stored(finalized)
    line = finalized.lines.get()
    line.amount = Decimal("0.00")
    with pytest.raises(FrozenError, match="never changes"):
        line.save()
    with pytest.raises(FrozenError, match="cannot be deleted"):
        line.delete()
    assert _as_stored(finalized) == before


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_bulk_changes_of_a_finalized_statements_lines_are_refused(finalized, operation):
    before = _as_stored(finalized)
    lines = StatementLine.objects.filter(statement=finalized)
    with pytest.raises(FrozenError):
        lines.update(amount=Decimal("0.00")) if operation == "update" else lines.delete()
    # Through the period as well (the lines the period holds include the frozen ones).
    with pytest.raises(FrozenError):
        StatementLine.objects.filter(period=finalized.period).update(description="changed")
    assert _as_stored(finalized) == before


def test_a_refresh_of_the_month_leaves_the_finalized_statement_as_it_was(finalized, world, ledger):
    before = _as_stored(finalized)
    ledger.add(at=hour(3, 10), gpu_hours="1", department=world.marketing, gpu_class=world.a100)
    services.period_refresh(month=MARCH, force=True)
    assert _as_stored(finalized) == before


# --- Through the admin ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["finance", "superuser"])
def test_the_admin_shows_a_finalized_statement_read_only(finalized, world, client, role):
    user = (
        world.user("finance")
        if role == "finance"
        else factories.UserFactory(username="root", is_superuser=True, is_staff=True)
    )
    client.force_login(user)
    page = client.get(reverse("admin:billing_statement_change", args=[finalized.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert page.context["has_delete_permission"] is False
    assert page.context["adminform"].form.fields == {}
    assert "6.00" in page.content.decode()


@pytest.mark.parametrize("role", ["finance", "it_admin", "superuser"])
def test_the_admin_refuses_to_change_or_delete_a_finalized_statement(
    finalized, world, client, role
):
    before = _as_stored(finalized)
    user = (
        world.user(role)
        if role != "superuser"
        else factories.UserFactory(username="root", is_superuser=True, is_staff=True)
    )
    client.force_login(user)

    change = client.post(
        reverse("admin:billing_statement_change", args=[finalized.pk]),
        {"total": "0.01", "status": "draft", "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0"},
    )
    delete = client.post(
        reverse("admin:billing_statement_delete", args=[finalized.pk]), {"post": "yes"}
    )
    bulk_delete = client.post(
        reverse("admin:billing_statement_changelist"),
        {"action": "delete_selected", "_selected_action": [finalized.pk], "post": "yes"},
    )

    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk_delete.status_code in (200, 302)  # the action is not offered: nothing done
    assert _as_stored(finalized) == before


def test_the_admin_offers_no_way_to_add_a_statement(finalized, world, client):
    client.force_login(world.user("finance"))
    assert client.get(reverse("admin:billing_statement_add")).status_code == 403


def test_a_statement_is_finalized_at_the_moment_its_figures_were_computed(world, ledger):
    march = bill_march(world, ledger)
    statement = services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    assert statement.computed_at == statement.finalized_at
    assert statement.total == Decimal("5.00")
