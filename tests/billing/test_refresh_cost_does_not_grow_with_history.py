"""Re-pricing one month's drafts (a forced refresh) does the same work whether the portal
holds that month only or a year of earlier months: the same queries, the same rows read
from the ledger and the lines, and never a look at every earlier statement for each line
it deletes and writes.

Rows read are PostgreSQL's own count for the transaction (``pg_stat_xact_user_tables``),
with the planner told to take an index wherever there is one, as it does once the tables
hold a year: the test's tables are so small that scanning them whole would be cheaper.
The database's guards on finalized statements' lines (billing/0003, billing/0010) first
run while the tables hold one month, as in a process that has been up since then: a guard
that keeps the plan it made for the small table scans every statement of every month for
each line: what made a forced refresh slower with a year of history than with one month
(``bench/report.py``)."""

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import Statement, StatementLine
from tests import factories
from tests.billing.conftest import hour

MONTH = dt.date(2026, 3, 1)
EARLIER = [dt.date(2025, month, 1) for month in range(3, 13)] + [
    dt.date(2026, 1, 1),
    dt.date(2026, 2, 1),
]
TABLES = [
    "metering_usagerecord",
    "billing_statement",
    "billing_statementline",
    "billing_adjustment",
    "billing_workerpoolhour",
    "jobs_jobgputime",
]


def rows_read() -> dict[str, int]:
    """Rows this transaction has read so far, per table (by scans and through indexes)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, seq_tup_read + COALESCE(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = ANY(%s)",
            [TABLES],
        )
        return dict(cursor.fetchall())


def forced_refresh() -> tuple[int, dict[str, int]]:
    """A forced refresh of MONTH: how many queries it made, and the rows it read per table."""
    with connection.cursor() as cursor:
        # The planner's view of the ledger as it is (which of its indexes holds the month).
        cursor.execute("ANALYZE metering_usagerecord")
    before = rows_read()
    with CaptureQueriesContext(connection) as queries:
        services.period_refresh(month=MONTH, force=True)
    after = rows_read()
    return len(queries), {table: after.get(table, 0) - before.get(table, 0) for table in TABLES}


def test_a_forced_refresh_does_the_same_work_with_a_year_of_history(postgres, ledger, fleet):
    a100, marketing, training = fleet
    departments = [
        marketing,
        training,
        factories.DepartmentFactory(slug="research"),
        factories.DepartmentFactory(slug="support"),
    ]

    def use(month: dt.date) -> None:
        for number, department in enumerate(departments):
            for day in (2, 20):
                ledger.add(
                    at=hour(day, 8 + number, month=month.month, year=month.year),
                    gpu_hours=f"{number + 1}.5",
                    department=department,
                    gpu_class=a100,
                )

    use(MONTH)
    services.period_refresh(month=MONTH)
    with connection.cursor() as cursor:
        # The tables of one month, known as such (autovacuum analyzes new tables), and no
        # plan kept from earlier tests in this session.
        cursor.execute("ANALYZE")
        cursor.execute("DISCARD PLANS")
    for _ in range(3):  # the guards run often enough to keep a plan, if they keep one
        services.period_refresh(month=MONTH, force=True)
    with connection.cursor() as cursor:
        for method in ("seqscan", "hashjoin", "mergejoin", "material"):
            cursor.execute(f"SET LOCAL enable_{method} = off")

    queries_alone, read_alone = forced_refresh()
    for month in EARLIER:
        use(month)
        services.period_refresh(month=month)
    queries_with_history, read_with_history = forced_refresh()

    assert queries_with_history == queries_alone
    assert read_alone["metering_usagerecord"] > 0  # the month's ledger, counted
    statements = read_with_history.pop("billing_statement")
    statements_alone = read_alone.pop("billing_statement")
    assert read_with_history == read_alone
    # The statements: a whole read of the table may still be the planner's choice for a
    # query at this size; one per line deleted and written is what must not happen.
    lines = StatementLine.objects.filter(period__month=MONTH).count()
    earlier = Statement.objects.exclude(period__month=MONTH).count()
    assert earlier == len(EARLIER) * len(departments)
    assert statements - statements_alone < lines * earlier
