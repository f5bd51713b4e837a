"""Finance and IT read every department in one table on the home page, which grows: it
sorts by name, cost centre and status, and searches by name, slug, cost centre or
namespace. A sort key that is no column is a message, never a 500."""

import re

from tests.conftest import client_as
from tests.factories import DepartmentFactory, NamespaceFactory


def _table_names(page: str) -> list[str]:
    table = page.split('<table id="departments">', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<a href="/departments/[^/]+/">([^<]+)</a>', table)


def _get(client, world, **query):
    response = client_as(client, world, "finance").get("/", query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_table_sorts_by_its_columns(world, client):
    DepartmentFactory(slug="zeta", name="Zeta Lab", cost_centre="CC-0001", active=False)
    assert _table_names(_get(client, world)) == ["Marketing", "Training", "Zeta Lab"]
    assert _table_names(_get(client, world, sort="-name")) == ["Zeta Lab", "Training", "Marketing"]
    assert _table_names(_get(client, world, sort="cost_centre"))[0] == "Zeta Lab"
    assert _table_names(_get(client, world, sort="status"))[0] == "Zeta Lab"  # inactive first
    page = _get(client, world, sort="-name")
    assert 'aria-sort="descending"' in page and "?sort=name" in page


def test_the_table_searches_by_name_cost_centre_or_namespace(world, client):
    research = DepartmentFactory(slug="research", name="Research", cost_centre="CC-7777")
    NamespaceFactory(name="dept-research-gpu", department=research)
    assert _table_names(_get(client, world, q="research")) == ["Research"]
    assert _table_names(_get(client, world, q="CC-7777")) == ["Research"]
    assert _table_names(_get(client, world, q="research-gpu")) == ["Research"]
    assert _table_names(_get(client, world, q="mark")) == ["Marketing"]
    page = _get(client, world, q="nothing-like-it")
    assert _table_names(page) == [] and "No department matches" in page


def test_a_sort_key_that_is_no_column_is_a_message(world, client):
    page = _get(client, world, sort="password")
    assert "is not a column to sort by" in page
    assert _table_names(page) == ["Marketing", "Training"]


def test_a_manager_sees_no_search_of_other_departments(world, client):
    page = client_as(client, world, "manager").get("/", {"q": "Training"}).content.decode()
    assert "Training" not in page and "Marketing" in page
