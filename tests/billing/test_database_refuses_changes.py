"""On PostgreSQL the database itself keeps a finalized statement and its lines as they
are, even against raw SQL that bypasses the models."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing import services
from billing.models import Statement, StatementLine
from tests import factories
from tests.billing.conftest import hour

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def finalized(postgres, ledger):
    a100 = factories.GpuClassFactory(slug="a100", name="A100", capacity_gpus=2)
    marketing = factories.DepartmentFactory(slug="marketing")
    factories.RateCardFactory(gpu_class=a100, price_per_gpu_hour=Decimal("2.00"))
    ledger.add(at=hour(2, 10), gpu_hours="1.5", department=marketing, gpu_class=a100)
    statement = Statement.objects.get(
        period=services.period_refresh(month=MARCH), department=marketing
    )
    return services.statement_finalize(statement=statement, user=None)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE billing_statement SET total = 0 WHERE id = %(statement)s",
        "UPDATE billing_statement SET status = 'draft' WHERE id = %(statement)s",
        "DELETE FROM billing_statement WHERE id = %(statement)s",
        "UPDATE billing_statementline SET amount = 0 WHERE statement_id = %(statement)s",
        "DELETE FROM billing_statementline WHERE statement_id = %(statement)s",
        "INSERT INTO billing_statementline (period_id, statement_id, kind, namespace, tier, "
        "gpu_seconds, off_peak_multiplier, department_multiplier, list_amount, amount, "
        "description, position, jobs_count) SELECT period_id, id, 'adjustment', '', '', 0, 1, "
        "1, 5, 5, 'sneaked in', 99, 0 FROM billing_statement WHERE id = %(statement)s",
    ],
)
def test_raw_sql_cannot_change_a_finalized_statement(finalized, sql):
    lines_before = list(StatementLine.objects.filter(statement=finalized).values())
    with (
        pytest.raises(IntegrityError, match="finalized"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, {"statement": finalized.pk})
    finalized.refresh_from_db()
    assert (finalized.status, finalized.total) == ("finalized", Decimal("3.00"))
    assert list(StatementLine.objects.filter(statement=finalized).values()) == lines_before


def test_a_draft_still_follows_the_ledger(finalized, ledger):
    draft = Statement.objects.create(
        period=finalized.period, department=factories.DepartmentFactory()
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_statement SET total = 7 WHERE id = %s", [draft.pk])
    draft.refresh_from_db()
    assert draft.total == 7
