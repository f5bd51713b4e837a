"""Exports: statements and usage as CSV and XLSX (the same table), a statement as the PDF
finance sends."""

import base64
import contextlib
import csv
import io
import re
import zlib
from decimal import Decimal

import openpyxl
import pytest
from django.utils import timezone

from billing import services
from billing.exports import statement_pdf
from billing.models import Adjustment, AdjustmentKind
from billing.selectors import statement_with_lines
from tests import factories
from tests.billing.conftest import hour
from tests.billing.test_api_statements import MARCH, March, bill_march
from tests.conftest import client_as

URL = "/api/v1/statements/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def march(world, ledger) -> March:
    return bill_march(world, ledger)


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200, response.content[:300]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def _sheet_rows(response) -> list[list]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == XLSX
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def pdf_text(data: bytes) -> str:
    """The strings a reportlab PDF draws, one a line: its content streams un-Ascii85'd and
    inflated, each ``(…) Tj`` string unescaped."""
    assert data.startswith(b"%PDF-")
    strings = []
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        stream = match.group(1).strip()
        with contextlib.suppress(ValueError, zlib.error):  # a stream that is not packed
            stream = zlib.decompress(base64.a85decode(stream, adobe=True))
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", stream, re.S):
            unescaped = re.sub(
                rb"\\([0-7]{1,3}|.)",
                lambda m: bytes([int(m[1], 8)]) if m[1].isdigit() else m[1],
                literal,
            )
            strings.append(unescaped.decode("cp1252"))
    return "\n".join(strings)


def test_the_statement_list_as_csv_has_one_row_per_statement(world, api_client, march):
    client = client_as(api_client, world, "finance")
    response = client.get(URL, {"period": "2026-03", "format": "csv"})

    rows = _csv_rows(response)
    assert 'filename="statements.csv"' in response["Content-Disposition"]
    assert sorted((r["department"], r["total"], r["currency"], r["status"]) for r in rows) == [
        ("marketing", "5.00", "EUR", "draft"),
        ("training", "0.50", "EUR", "draft"),
    ]


def test_a_statement_as_csv_has_its_lines_as_rows(world, api_client, march):
    client = client_as(api_client, world, "manager")
    response = client.get(f"{URL}{march.marketing.pk}/", {"format": "csv"})

    rows = _csv_rows(response)
    assert 'filename="statement-marketing-2026-03.csv"' in response["Content-Disposition"]
    assert [(r["gpu_class"], r["gpu_hours"], r["unit_price"], r["amount"]) for r in rows] == [
        ("a100", "1.50", "2.00", "3.00"),
        ("t4", "2.00", "1.00", "2.00"),
    ]
    assert (
        rows[0]["description"]
        == "1.50 GPU-hours of A100 × 2.00 EUR, namespace workloads: dept-marketing"
    )
    # Each row says whose month it is, so the file needs no name to be read.
    assert list(rows[0])[:5] == ["statement", "period", "department", "cost_centre", "status"]
    assert {(r["statement"], r["period"], r["department"], r["status"]) for r in rows} == {
        (str(march.marketing.pk), "2026-03", "marketing", "draft")
    }


def test_a_statement_as_xlsx_has_the_csv_columns_with_numbers(world, api_client, march):
    client = client_as(api_client, world, "finance")
    url = f"{URL}{march.marketing.pk}/"

    header, *rows = _sheet_rows(client.get(url, {"format": "xlsx"}))

    csv_rows = _csv_rows(client.get(url, {"format": "csv"}))
    assert header == list(csv_rows[0])
    amount = header.index("amount")
    assert [row[amount] for row in rows] == [3, 2]
    assert sum(row[amount] for row in rows) == 5
    assert rows[0][header.index("gpu_class")] == "a100"
    assert rows[0][header.index("currency")] == "EUR"


def test_the_statement_list_as_xlsx_is_the_whole_table(world, api_client, march):
    client = client_as(api_client, world, "finance")
    header, *rows = _sheet_rows(client.get(URL, {"format": "xlsx", "page_size": 1}))
    department, total = header.index("department"), header.index("total")
    assert sorted((row[department], row[total]) for row in rows) == [
        ("marketing", 5),
        ("training", Decimal("0.5")),
    ]


def test_a_formula_in_an_adjustment_reason_stays_text_in_the_spreadsheet(world, api_client, march):
    services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    Adjustment.objects.create(
        original=march.marketing,
        applied_to=services.next_open_statement(department=world.marketing, after=MARCH),
        kind=AdjustmentKind.CORRECTION,
        amount=Decimal("-1.00"),
        reason='=HYPERLINK("http://evil.example")',
    )
    client = client_as(api_client, world, "finance")
    header, row = _sheet_rows(client.get("/api/v1/adjustments/", {"format": "xlsx"}))
    assert row[header.index("reason")] == '\'=HYPERLINK("http://evil.example")'
    assert row[header.index("amount")] == -1


def test_usage_as_xlsx_has_the_rows_of_the_csv(world, api_client, march):
    client = client_as(api_client, world, "finance")
    params = {"start": "2026-03-01", "end": "2026-04-01", "granularity": "month"}

    header, *rows = _sheet_rows(client.get("/api/v1/usage/", {**params, "format": "xlsx"}))
    csv_rows = _csv_rows(client.get("/api/v1/usage/", {**params, "format": "csv"}))

    assert header == list(csv_rows[0])
    assert len(rows) == len(csv_rows) == 4
    cells = {
        (row[header.index("department")], row[header.index("gpu_class")]): row[
            header.index("quantity")
        ]
        for row in rows
    }
    assert cells == {
        ("marketing", "a100"): Decimal("1.5"),
        ("marketing", "t4"): 2,
        ("training", "a100"): Decimal("0.25"),
        (None, "t4"): 1,
    }


def test_a_draft_statement_pdf_names_the_department_its_lines_and_total(world, api_client, march):
    response = client_as(api_client, world, "manager").get(f"{URL}{march.marketing.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="statement-marketing-2026-03.pdf"' in response["Content-Disposition"]
    text = " ".join(pdf_text(response.content).split())  # lines wrap where the PDF needs
    for expected in (
        "Marketing",
        world.marketing.cost_centre,
        "March 2026",
        "DRAFT",
        "1.50 GPU-hours of A100 \xd7 2.00 EUR",
        f"(rate card #{march.a100_card.pk})",
        "3.00 EUR",
        "2.00 EUR",
        "5.00 EUR",
    ):
        assert expected in text, expected
    assert "Training" not in text


def test_a_finalized_statement_pdf_says_when_and_by_whom_and_has_no_draft_mark(
    world, api_client, march
):
    finalized = services.statement_finalize(statement=march.marketing, user=world.user("finance"))
    response = client_as(api_client, world, "finance").get(
        f"{URL}{march.marketing.pk}/", {"format": "pdf"}
    )

    assert response.status_code == 200
    text = pdf_text(response.content)
    # When it was finalized (now, not a year the test could outlive), in the portal's zone.
    when = timezone.localtime(finalized.finalized_at)
    assert f"Finalized {when:%Y-%m-%d %H:%M %Z}" in text and "(fiona)" in text
    assert "DRAFT" not in text
    assert "5.00 EUR" in text


def test_a_pdf_rounds_each_amount_to_the_currency_minor_unit(world, ledger):
    factories.RateCardFactory(gpu_class=world.a100, price_per_gpu_hour=Decimal("1.3333"))
    ledger.add(at=hour(2, 10), gpu_hours="1000", department=world.marketing, gpu_class=world.a100)
    period = services.period_refresh(month=MARCH)
    statement = period.statements.get(department=world.marketing)

    text = pdf_text(
        statement_pdf(statement_with_lines(user=world.user("finance"), pk=statement.pk))
    )

    assert "1,333.30 EUR" in text
    assert "1333.3000" not in text
