import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from portal.urls import router


def test_schema_generates_and_validates_with_no_warnings(tmp_path, db):
    # --fail-on-warn raises on any warning or error drf-spectacular reports.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    schema = (tmp_path / "s.yml").read_text()
    for prefix, _viewset, _basename in router.registry:
        assert f"/api/v1/{prefix}/" in schema
    assert "/api/v1/auth/token/" in schema


def test_api_docs_load_their_assets_from_our_own_static_files(world, client):
    client.force_login(world.user("member"))
    html = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets, "the docs page references no assets"
    for asset in assets:
        assert asset.startswith("/static/"), f"{asset} is not served by us"
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not in our static files"
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", html)


@pytest.mark.parametrize("role", ["member", "it_admin"])
def test_schema_is_served_to_signed_in_users(world, api_client, role):
    api_client.force_login(world.user(role))
    response = api_client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "GPU chargeback portal API"
