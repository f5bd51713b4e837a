"""A JSON body nested a thousand deep (a few kilobytes of ``[[[[…]]]]``) made Python's
decoder raise ``RecursionError``, which DRF let through as an HTML 500, without signing in
(the token endpoint) and for any member (job submission). Every JSON the API reads, as a
body or as a field of form data, is refused with a 400 that names the nesting limit."""

import io
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.test import APIClient
from rest_framework.views import APIView

from core import parsers
from jobs.kinds import __file__ as kinds_init
from jobs.models import GenerationJob
from tests.conftest import client_as

DEEP_ARRAYS = "[" * 1000 + "]" * 1000  # 2 KB
DEEP_OBJECTS = '{"a":' * 1000 + "1" + "}" * 1000  # 6 KB
JOB = {"department": "marketing", "kind": "lipsync-render", "tier": "batch"}


def _nested(depth: int):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


def _says_too_deep(response) -> bool:
    return f"{parsers.MAX_JSON_DEPTH} levels" in json.dumps(response.json())


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_a_deep_body_to_the_token_endpoint_answers_400_without_signing_in(world, body):
    client = APIClient()
    client.raise_request_exception = False
    response = client.generic("POST", "/api/v1/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert _says_too_deep(response), response.json()


@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_a_deep_body_to_job_submission_answers_400_for_a_member(world, api_client, body):
    client = client_as(api_client, world, "member")
    client.raise_request_exception = False
    before = GenerationJob.objects.count()
    response = client.generic("POST", "/api/v1/jobs/", body, content_type="application/json")
    assert response.status_code == 400
    assert _says_too_deep(response), response.json()
    assert GenerationJob.objects.count() == before


def test_deep_params_inside_a_well_formed_body_answer_400(world, api_client):
    client = client_as(api_client, world, "member")
    client.raise_request_exception = False
    body = '{"department": "marketing", "kind": "lipsync-render", "tier": "batch", "params": '
    response = client.generic(
        "POST", "/api/v1/jobs/", body + DEEP_ARRAYS + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert _says_too_deep(response), response.json()


@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_deep_params_sent_as_form_data_answer_400_naming_the_field(world, api_client, form):
    """Form data carries ``params`` as JSON text, which the serializer field decodes
    itself: the body parser's limit does not see it."""
    client = client_as(api_client, world, "member")
    client.raise_request_exception = False
    data = {**JOB, "params": DEEP_ARRAYS}
    if form == "multipart":
        response = client.post("/api/v1/jobs/", data, format="multipart")
    else:
        response = client.generic(
            "POST",
            "/api/v1/jobs/",
            urlencode(data),
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 400
    assert list(response.json()) == ["params"]
    assert f"{parsers.MAX_JSON_DEPTH} levels" in response.json()["params"][0]


def test_json_as_deep_as_the_limit_is_read_and_one_level_more_is_refused():
    parser = parsers.JSONParser()
    at_limit = json.dumps(_nested(parsers.MAX_JSON_DEPTH)).encode()
    assert parser.parse(io.BytesIO(at_limit), parser_context={}) == _nested(parsers.MAX_JSON_DEPTH)
    too_deep = json.dumps({"a": _nested(parsers.MAX_JSON_DEPTH)}).encode()
    with pytest.raises(ParseError, match=f"deeper than {parsers.MAX_JSON_DEPTH} levels"):
        parser.parse(io.BytesIO(too_deep), parser_context={})


def test_the_deepest_body_the_api_takes_is_well_within_the_limit():
    """A job kind's definition (its ``params_schema`` with enums) is the deepest body the
    API takes: the limit leaves it several times over."""
    definitions = json.loads((Path(kinds_init).parent / "production.json").read_text())
    deepest = max(parsers.json_depth(kind) for kind in definitions)
    assert 3 <= deepest <= parsers.MAX_JSON_DEPTH // 4


def test_a_nested_value_within_the_limit_in_job_params_is_refused_by_the_schema(world, api_client):
    """A deep value the parser lets through meets the kind's JSON schema (a flat object of
    scalars), which refuses it with a 400 rather than storing it."""
    client = client_as(api_client, world, "member")
    client.raise_request_exception = False
    params = {"text": _nested(parsers.MAX_JSON_DEPTH - 2)}
    response = client.post("/api/v1/jobs/", {**JOB, "params": params}, format="json")
    assert response.status_code == 400
    assert "text" in response.json()["params"][0]
    assert not GenerationJob.objects.filter(params=params).exists()


def _api_views(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            view = getattr(pattern.callback, "cls", None) or getattr(
                pattern.callback, "view_class", None
            )
            if isinstance(view, type) and issubclass(view, APIView):
                yield str(pattern.pattern), view


def test_every_api_view_reads_json_with_the_bounded_parser():
    """A view that names its own parsers (DRF's token view does) would read JSON with
    DRF's unbounded parser again."""
    unbounded = sorted(
        {
            f"{route} ({view.__name__}: {parser.__module__}.{parser.__name__})"
            for route, view in _api_views(get_resolver().url_patterns)
            for parser in view.parser_classes
            if issubclass(parser, DRFJSONParser) and not issubclass(parser, parsers.JSONParser)
        }
    )
    assert not unbounded, unbounded
