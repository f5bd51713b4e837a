"""XLSX exports open ready to read: money in its currency to its minor unit, GPU-hours to
two decimals, columns wide enough for what they hold, the header row frozen, and a sheet
name that keeps the month (Excel allows 31 characters, none of []:*?/\\)."""

import io

import openpyxl
import pytest

from core.api import XLSXRenderer, sheet_title
from tests.billing.test_api_statements import bill_march
from tests.conftest import client_as

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHARGEBACK = "/api/v1/reports/chargeback/"
STATEMENTS = "/api/v1/statements/"


def _sheet(content: bytes):
    return openpyxl.load_workbook(io.BytesIO(content)).active


def _columns(sheet) -> dict[str, int]:
    """Column letter by header."""
    return {cell.value: cell.column_letter for cell in sheet[1]}


@pytest.fixture
def march(world, ledger):
    return bill_march(world, ledger)


@pytest.fixture
def chargeback(world, api_client, march):
    response = client_as(api_client, world, "finance").get(
        CHARGEBACK, {"period": "2026-03", "format": "xlsx"}
    )
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == XLSX
    return _sheet(response.content)


def test_the_chargeback_sheet_is_named_with_its_month(chargeback):
    assert chargeback.title == "Chargeback 2026-03"


def test_the_header_row_stays_in_view(chargeback):
    assert chargeback.freeze_panes == "A2"


def test_money_reads_in_its_currency_and_gpu_hours_to_two_decimals(chargeback):
    column = _columns(chargeback)
    rows = range(2, chargeback.max_row + 1)
    assert len(rows) == 3  # marketing, training, Unallocated

    def formats(name: str) -> list[str]:
        cells = [chargeback[f"{column[name]}{row}"] for row in rows]
        return [cell.number_format for cell in cells if cell.value is not None]

    assert formats("spend") == ['#,##0.00 "EUR"'] * 3
    # Training ran no T4, Unallocated no A100: empty cells, no amount to format.
    assert formats("spend A100") == ['#,##0.00 "EUR"'] * 2
    assert formats("spend T4") == ['#,##0.00 "EUR"'] * 2
    assert formats("gpu_hours") == ["0.00"] * 3
    assert set(formats("budget_used")) <= {"General"}


def test_columns_are_as_wide_as_their_longest_cell(chargeback):
    column = _columns(chargeback)
    widths = {name: chargeback.column_dimensions[letter].width for name, letter in column.items()}

    assert widths["department_name"] >= len("department_name")
    assert widths["department_name"] < 30
    # "5.00 EUR" is shorter than its header; an amount's currency counts in its width.
    assert widths["spend"] >= len("spend")
    assert widths["queue_wait p95 batch (s)"] >= len("queue_wait p95 batch (s)")


def test_a_statement_sheet_keeps_its_month_whatever_the_department_is_called(
    world, api_client, march
):
    march.marketing.department.slug = "marketing-and-corporate-communications"
    march.marketing.department.save()
    response = client_as(api_client, world, "finance").get(
        f"{STATEMENTS}{march.marketing.pk}/", {"format": "xlsx"}
    )
    assert response.status_code == 200, response.content[:300]
    sheet = _sheet(response.content)

    assert len(sheet.title) <= 31
    assert sheet.title.endswith(" 2026-03")
    assert sheet.title.startswith("Statement marketing")
    column = _columns(sheet)
    assert sheet[f"{column['amount']}2"].number_format == '#,##0.00 "EUR"'
    assert sheet[f"{column['gpu_hours']}2"].number_format == "0.00"


def test_an_amount_in_yen_has_no_decimals():
    body = XLSXRenderer().render(
        [{"total": "1235", "currency": "JPY", "gpu_hours": "1.50"}],
        renderer_context={},
    )
    sheet = _sheet(body)
    column = _columns(sheet)

    assert sheet[f"{column['total']}2"].value == 1235
    assert sheet[f"{column['total']}2"].number_format == '#,##0 "JPY"'
    assert sheet[f"{column['gpu_hours']}2"].number_format == "0.00"


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("chargeback-2026-03", "Chargeback 2026-03"),
        ("worker-pools-2026-03", "Worker pools 2026-03"),
        ("statements", "Statements"),
        # 40 characters: the words are cut, the month stays.
        ("statement-marketing-2026-03-line-12-jobs", "Statement marketing lin 2026-03"),
        ("a[b]:c*d?e/f\\g-2026-03", "A b c d e f g 2026-03"),
    ],
)
def test_a_sheet_title_fits_excel_and_keeps_the_month(name, title):
    got = sheet_title(name)

    assert got == title
    assert len(got) <= 31
