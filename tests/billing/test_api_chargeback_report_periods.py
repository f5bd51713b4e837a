"""GET /api/v1/reports/chargeback/?period= a quarter, a year to date or a range of months:
the sum of the months' statements (draft and finalized), the very figures of the monthly
reports added up, with the change against the period before (amount and percent, "new"
where nothing was spent before), as JSON, CSV and XLSX."""

import csv
import datetime as dt
import io
from decimal import Decimal

import openpyxl
import pytest

from billing import services
from billing.models import Statement
from tests import factories
from tests.billing.conftest import hour
from tests.conftest import client_as

URL = "/api/v1/reports/chargeback/"
Q1 = ["2026-01", "2026-02", "2026-03"]


@pytest.fixture
def quarters(world, ledger):
    """Q4 2025 and Q1 2026 at 2.00 (A100) and 1.00 (T4) per GPU-hour, in amounts that
    round: each month is priced, and rounded, on its own. January is finalized."""
    research = factories.DepartmentFactory(slug="research", name="Research")
    factories.RateCardFactory(
        gpu_class=world.a100,
        price_per_gpu_hour=Decimal("2"),
        valid_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    factories.RateCardFactory(
        gpu_class=world.t4,
        price_per_gpu_hour=Decimal("1"),
        valid_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    # Q4 2025: marketing 1 h of A100 (2.00), research 3 h of T4 (3.00); training nothing.
    ledger.add(
        at=hour(5, 10, month=11, year=2025),
        gpu_hours="1",
        department=world.marketing,
        gpu_class=world.a100,
    )
    ledger.add(
        at=hour(6, 10, month=12, year=2025), gpu_hours="3", department=research, gpu_class=world.t4
    )
    for month, a100_hours, t4_hours in ((1, "1.3337", "0.25"), (2, "0.6668", "2"), (3, "1.5", "0")):
        ledger.add(
            at=hour(2, 10, month=month),
            gpu_hours=a100_hours,
            department=world.marketing,
            gpu_class=world.a100,
        )
        ledger.add(
            at=hour(3, 10, month=month),
            gpu_hours=t4_hours,
            department=world.marketing,
            gpu_class=world.t4,
        )
        ledger.add(
            at=hour(4, 10, month=month),
            gpu_hours="0.3333",
            department=world.training,
            gpu_class=world.a100,
        )
        ledger.add(at=hour(5, 10, month=month), gpu_hours="0.5", gpu_class=world.t4)
    for month in (dt.date(2025, 11, 1), dt.date(2025, 12, 1), dt.date(2026, 1, 1)):
        services.period_refresh(month=month)
    services.period_refresh(month=dt.date(2026, 2, 1))
    services.period_refresh(month=dt.date(2026, 3, 1))
    for statement in Statement.objects.filter(period__month=dt.date(2026, 1, 1)):
        services.statement_finalize(statement=statement, user=world.user("finance"))
    return research


def _report(api_client, world, role, period, **params):
    response = client_as(api_client, world, role).get(URL, {"period": period, **params})
    assert response.status_code == 200, response.content[:500]
    return response


def _by_department(body) -> dict:
    return {row["department_name"]: row for row in body["rows"]}


def test_a_quarters_report_is_the_sum_of_its_monthly_reports_to_the_cent(
    world, api_client, quarters
):
    quarter = _report(api_client, world, "finance", "2026-Q1").json()
    months = [_report(api_client, world, "finance", month).json() for month in Q1]

    assert (quarter["period"], quarter["start_month"], quarter["end_month"]) == (
        "2026-Q1",
        "2026-01",
        "2026-03",
    )
    expected_spend: dict[str, Decimal] = {}
    expected_classes: dict[str, dict[str, Decimal]] = {}
    for month in months:
        for row in month["rows"]:
            name = row["department_name"]
            expected_spend[name] = expected_spend.get(name, Decimal(0)) + Decimal(row["spend"])
            classes = expected_classes.setdefault(name, {})
            for gpu_class, amount in row["spend_by_gpu_class"].items():
                classes[gpu_class] = classes.get(gpu_class, Decimal(0)) + Decimal(amount)
    rows = _by_department(quarter)
    # Research spent nothing in Q1 (only in Q4): a row at 0, for the change.
    assert {name: Decimal(row["spend"]) for name, row in rows.items()} == {
        **expected_spend,
        "Research": Decimal(0),
    }
    for name, classes in expected_classes.items():
        assert {k: Decimal(v) for k, v in rows[name]["spend_by_gpu_class"].items()} == classes
    assert Decimal(quarter["departments_total"]) == sum(
        (Decimal(month["departments_total"]) for month in months), Decimal(0)
    )
    for figure in ("capacity_amount", "idle_amount"):
        assert Decimal(quarter[figure]) == sum((Decimal(m[figure]) for m in months), Decimal(0))
    # The rounding is each month's: 1.3337 h × 2.00 = 2.6674 is 2.67 in January.
    assert months[0]["rows"][0]["spend_by_gpu_class"]["A100"] == "2.67"
    assert rows["Marketing"]["spend"] == "9.25"  # 2.67 + 0.25 + 1.33 + 2.00 + 3.00 + 0.00
    assert rows["Training"]["spend"] == "2.01"  # 0.67 three times


def test_the_change_is_against_the_quarter_before(world, api_client, quarters):
    body = _report(api_client, world, "finance", "2026-Q1").json()
    rows = _by_department(body)

    assert body["previous_period"] == "2025-Q4"
    marketing = rows["Marketing"]
    assert (marketing["previous"], marketing["change"], marketing["change_pct"]) == (
        "2.00",
        "7.25",
        "362.5",
    )
    training = rows["Training"]
    assert (training["previous"], training["change"], training["change_pct"]) == (
        "0.00",
        "2.01",
        "new",
    )
    research = rows["Research"]
    assert (research["spend"], research["previous"], research["change"]) == (
        "0.00",
        "3.00",
        "-3.00",
    )
    assert research["change_pct"] == "-100.0"
    assert (body["previous_departments_total"], body["departments_total"]) == ("5.00", "11.26")
    assert (body["departments_change"], body["departments_change_pct"]) == ("6.26", "125.2")
    # A quarter's row holds three statements: no one statement; a draft among them.
    assert (marketing["statement"], marketing["status"]) == (None, "draft")
    unallocated = rows["Unallocated"]
    assert (unallocated["spend"], unallocated["previous"], unallocated["change_pct"]) == (
        "1.50",
        "0.00",
        "new",
    )


def test_a_month_is_compared_with_the_month_before(world, api_client, quarters):
    body = _report(api_client, world, "finance", "2026-02").json()
    marketing = _by_department(body)["Marketing"]
    assert body["previous_period"] == "2026-01"
    # February 1.33 + 2.00 against January 2.67 + 0.25.
    assert (marketing["spend"], marketing["previous"], marketing["change"]) == (
        "3.33",
        "2.92",
        "0.41",
    )
    assert marketing["change_pct"] == "14.0"
    january = _by_department(_report(api_client, world, "finance", "2026-01").json())
    assert january["Marketing"]["status"] == "finalized"
    assert january["Marketing"]["statement"] is not None


def test_a_range_and_a_year_to_date_read_their_months(world, api_client, quarters):
    pair = _report(api_client, world, "finance", "2026-02..2026-03").json()
    assert pair["previous_period"] == "2025-12..2026-01"
    marketing = _by_department(pair)["Marketing"]
    assert (marketing["spend"], marketing["previous"]) == ("6.33", "2.92")
    # 2026 to December (now): Q1's figures, the rest of the year having none; against
    # the same months of 2025.
    year = _report(api_client, world, "finance", "2026-YTD").json()
    assert year["start_month"] == "2026-01"
    assert year["previous_period"].startswith("2025-01..")
    assert _by_department(year)["Marketing"]["spend"] == "9.25"
    assert _by_department(year)["Marketing"]["previous"] == "2.00"


def test_a_manager_reads_the_quarter_of_their_departments_only(world, api_client, quarters):
    body = _report(api_client, world, "manager", "2026-Q1").json()
    assert [row["department"] for row in body["rows"]] == ["marketing"]
    assert (body["departments_total"], body["previous_departments_total"]) == ("9.25", "2.00")
    assert (body["idle_amount"], body["capacity_amount"]) == (None, None)


def test_the_quarter_as_csv_and_xlsx_has_the_previous_and_change_columns(
    world, api_client, quarters
):
    response = _report(api_client, world, "finance", "2026-Q1", format="csv")
    assert 'filename="chargeback-2026-Q1.csv"' in response["Content-Disposition"]
    rows = {r["department_name"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert {k: rows["Marketing"][k] for k in ("period", "previous_period", "spend")} == {
        "period": "2026-Q1",
        "previous_period": "2025-Q4",
        "spend": "9.25",
    }
    assert (rows["Marketing"]["previous"], rows["Marketing"]["change"]) == ("2.00", "7.25")
    assert (rows["Marketing"]["change_pct"], rows["Training"]["change_pct"]) == ("362.5", "new")

    sheet = openpyxl.load_workbook(
        io.BytesIO(_report(api_client, world, "finance", "2026-Q1", format="xlsx").content)
    ).active
    header, *table = [list(row) for row in sheet.iter_rows(values_only=True)]
    marketing = next(row for row in table if row[header.index("department")] == "marketing")
    assert marketing[header.index("spend")] == pytest.approx(9.25)
    assert marketing[header.index("change")] == pytest.approx(7.25)
    assert marketing[header.index("period")] == "2026-Q1"


@pytest.mark.parametrize(
    ("period", "words"),
    [
        ("2026-Q5", "is no quarter"),
        ("2026-Q0", "is no quarter"),
        ("Q3", "names no year"),
        ("2026-06..2026-01", "ends before it starts"),
        ("2020-01..2026-06", "a range covers at most 36"),
        ("2027-Q1", "has not begun"),
        ("2027-YTD", "has not begun"),
        ("9999-Q1", "too far ahead"),
        ("0001-Q1", "before the year 2000"),
        ("2026-Q1;--", "a quarter (2026-Q3)"),
        ("2026-01..2026-02..2026-03", "a range of months (2026-01..2026-06"),
    ],
)
def test_a_period_the_report_cannot_read_is_refused_naming_the_parameter(
    world, api_client, period, words
):
    response = client_as(api_client, world, "finance").get(URL, {"period": period})
    assert response.status_code == 400
    (message,) = response.json()["period"]
    assert list(response.json()) == ["period"]
    assert words in message
