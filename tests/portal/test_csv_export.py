import csv
import io

from core.api import CSVRenderer
from tests.conftest import client_as
from tests.factories import DepartmentFactory


def _render(rows):
    return list(csv.reader(io.StringIO(CSVRenderer().render(rows).decode())))


def test_cells_a_spreadsheet_would_run_as_formulas_are_made_inert():
    rows = _render(
        [{"name": '=HYPERLINK("http://x")', "note": "@SUM(A1)", "amount": "-12.50", "dash": "-x"}]
    )
    assert rows == [
        ["name", "note", "amount", "dash"],
        ['\'=HYPERLINK("http://x")', "'@SUM(A1)", "-12.50", "'-x"],
    ]


def test_columns_keep_the_order_of_the_data_and_lists_join_in_one_cell():
    rows = _render([{"b": 1, "a": ["x", "y"]}, {"b": 2, "a": [], "c": {"d": 3}}])
    assert rows == [["b", "a", "c.d"], ["1", "x; y", ""], ["2", "", "3"]]


def test_a_formula_in_a_department_name_reaches_the_csv_inert(world, api_client):
    DepartmentFactory(slug="evil", name="=cmd|' /C calc'!A0")
    rows = client_as(api_client, world, "finance").get("/api/v1/departments/?format=csv")
    names = [row["name"] for row in csv.DictReader(io.StringIO(rows.content.decode()))]
    assert "'=cmd|' /C calc'!A0" in names


def test_an_empty_export_still_has_its_header(world, api_client):
    response = client_as(api_client, world, "finance").get("/api/v1/quotas/?kind=gpus&format=csv")
    assert response.status_code == 200
    assert response.content.decode().splitlines() == [
        "id,department,kind,job_kind,gpu_class,limit,unit,period,enforcement,"
        "alert_thresholds_pct,created_at,updated_at"
    ]
