"""Whatever a client sends to make a token, the API answers 201 for a valid request and
400 with field errors for anything else, and a refusal makes nothing."""

import json

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.fields import BooleanField

from accounts.models import ApiToken

URL = "/api/v1/tokens/"
DEEP = b"[" * 1000 + b"]" * 1000

# (what, raw JSON body, the field the refusal names)
REFUSED = [
    ("no name", b"{}", "name"),
    ("empty name", b'{"name": ""}', "name"),
    ("blank name", b'{"name": "   "}', "name"),
    ("null name", b'{"name": null}', "name"),
    ("name too long", json.dumps({"name": "x" * 101}).encode(), "name"),
    ("name an object", b'{"name": {"a": 1}}', "name"),
    ("name a list", b'{"name": ["a"]}', "name"),
    ("name a boolean", b'{"name": true}', "name"),
    ("name with a NUL", b'{"name": "a\\u0000b"}', "name"),
    ("name a lone surrogate", b'{"name": "a\\ud800"}', "name"),
    ("days NaN", b'{"name": "x", "days": NaN}', "detail"),
    ("days Infinity", b'{"name": "x", "days": Infinity}', "detail"),
    ("days 1e309", b'{"name": "x", "days": 1e309}', "days"),
    ("days huge", b'{"name": "x", "days": ' + b"9" * 400 + b"}", "days"),
    ("days negative", b'{"name": "x", "days": -30}', "days"),
    ("days zero", b'{"name": "x", "days": 0}', "days"),
    ("days a fraction", b'{"name": "x", "days": 2.5}', "days"),
    ("days a word", b'{"name": "x", "days": "a month"}', "days"),
    ("days the string nan", b'{"name": "x", "days": "nan"}', "days"),
    ("days a boolean", b'{"name": "x", "days": true}', "days"),
    ("days an object", b'{"name": "x", "days": {"n": 30}}', "days"),
    ("days a list", b'{"name": "x", "days": [30]}', "days"),
    ("days null", b'{"name": "x", "days": null}', "days"),
    ("read_only a word", b'{"name": "x", "read_only": "maybe"}', "read_only"),
    ("read_only a number", b'{"name": "x", "read_only": 2}', "read_only"),
    ("read_only a list", b'{"name": "x", "read_only": [true]}', "read_only"),
    ("read_only an object", b'{"name": "x", "read_only": {"yes": true}}', "read_only"),
    ("read_only null", b'{"name": "x", "read_only": null}', "read_only"),
    ("a list body", b'[{"name": "x"}]', "non_field_errors"),
    ("a string body", b'"name"', "non_field_errors"),
    ("deeply nested body", DEEP, "detail"),
    ("deep value", b'{"name": "x", "days": ' + b"[" * 100 + b"]" * 100 + b"}", "detail"),
    ("not JSON", b'{"name": "x",', "detail"),
]


@pytest.mark.parametrize(("body", "field"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_hostile_input_answers_400_naming_the_field_and_makes_nothing(
    world, api_client, body, field
):
    api_client.force_login(world.user("member"))
    api_client.raise_request_exception = False

    response = api_client.generic("POST", URL, body, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert field in response.json()
    assert not ApiToken.objects.exists()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON | st.text(min_size=95, max_size=105),
        "days": JSON | st.integers(min_value=-2, max_value=400),
        "read_only": JSON,
        "extra": JSON,
    },
)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_any_json_makes_one_valid_token_or_none_with_field_errors(world, api_client, body):
    api_client.force_login(world.user("member"))
    api_client.raise_request_exception = False
    before = ApiToken.objects.count()

    response = api_client.post(URL, body, format="json")

    assert response.status_code in (201, 400), (body, response.status_code)
    if response.status_code == 400:
        assert ApiToken.objects.count() == before
        assert set(response.json()) <= {"name", "days", "read_only"}, response.json()
        return
    assert ApiToken.objects.count() == before + 1
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert 1 <= (token.expires_at - token.created_at).days <= settings.API_TOKEN_MAX_DAYS
    assert 0 < len(token.name) <= 100 and token.name == token.name.strip()
    assert token.read_only is (body.get("read_only") in BooleanField.TRUE_VALUES)
