"""Schemathesis against the published OpenAPI schema, as each role: whatever the request
(valid or not: odd strings, NUL bytes, huge numbers, bad dates, unknown ids…, and the
hostile input generated cases rarely reach: dates at the calendar's edges, time-zone
offsets PostgreSQL does not take, NaN, label values with quotes, JSON nested a thousand
deep), the API answers without a server error, with a status code, a content type and a
body that the schema documents.

The portal's WSGI application runs in this process and thread, on the test's database
connection and inside its transaction (as with Django's test client, see
``_same_connection``): the fuzzer reads the data the test wrote, and nothing it writes
outlives the test.

Each operation gets its own Hypothesis test, run in a loop inside one pytest test per role
(so the data is built once per role). ``schemathesis.pytest.from_fixture`` would do the
same, but schemathesis 4.32 writes ``Function._nodeid``, which pytest 9.2 no longer has.
"""

import datetime as dt
import json
import traceback
from decimal import Decimal

import pytest
import schemathesis
import yaml
from django.core.cache import cache
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.media_types import YAML_MEDIA_TYPES
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing import services as billing_services
from billing.models import Statement
from departments.models import Tier
from portal.wsgi import application
from tests import factories
from tests.billing.conftest import Ledger, hour
from tests.hostile_input import DATE_NAMES, HOSTILE_DATES

# It needs no shared service (the application runs in this process, on the test database),
# so it runs beside the other integration tests rather than after them.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db,
    pytest.mark.xdist_group("schema-fuzz"),
]

ROLES = [
    "anonymous",
    "member",
    "manager",
    "finance",
    "it_admin",
    # Signed in by the identity provider (tests/oidc_provider.py): its access token for
    # marketing's manager, by the group mapped to that role.
    "provider_manager",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Requests per operation and role, by kind (see _strategies), sized so that the whole
# test stays near a minute on two cores. Anonymous requests all meet the same 401 (but
# for the token endpoint's), so a few suffice.
EXAMPLES = {
    "valid": 8,
    "invalid": 8,
    "known object": 5,
    "hostile query": 12,
    "hostile body": 6,
    "deep value in a body": 3,
}
ANONYMOUS_EXAMPLES = 3
MARCH = dt.date(2026, 3, 1)
# The werkzeug client sets no client address; a server does (sign-in is limited per address).
CLIENT = {"REMOTE_ADDR": "192.0.2.7"}
# Input the generated cases rarely reach: dates at the calendar's edges and offsets
# PostgreSQL does not take (for parameters that are dates), NaN and huge numbers, label
# values with quotes (for the others), and JSON nested past the decoder's recursion limit.
HOSTILE_VALUES = [
    "nan",
    "Infinity",
    "1e309",
    "9" * 400,
    "-9223372036854775809",
    'gpu"} or vector(1) #',
    "it's",
    'a\\"b',
]
SKIPPED_QUERY = {"format"}  # an unknown format is DRF's 404, before the view
# Far past the recursion limit: Hypothesis raises it while a test runs, so the 1,000
# levels that break a server's decoder would parse here.
DEEP = 50_000
DEEP_ARRAYS = b"[" * DEEP + b"]" * DEEP
HOSTILE_BODIES = [
    DEEP_ARRAYS,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"x": 1e999, "y": -1e999}',
    b'{"x": ' + b"9" * 5000 + b"}",
    b'{"x": NaN}',
]
# The role's token is the test's to set; a generated one would only be a 401.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})


@pytest.fixture
def _same_connection():
    """Requests run on the test's connection inside its transaction, so Django must not
    close "old" connections at the start and end of each request (Django's test client
    disconnects the same handler for the same reason)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def server_errors():
    """The tracebacks of the exceptions the portal did not handle, to show with a 500."""
    seen: list[str] = []

    def record(sender, request=None, **kwargs):
        seen.append("".join(traceback.format_exc(limit=-8)))

    got_request_exception.connect(record, weak=False)
    yield seen
    got_request_exception.disconnect(record)


@pytest.fixture
def _fresh_rate_limits():
    """Sign-in and submission counters start and end empty: the fuzzer signs in far more
    often than the rate, and other tests must not inherit its count."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def billing_data(world) -> dict:
    """Prices, a month of usage and its statements (marketing's finalized and corrected by
    an adjustment), so that list and detail endpoints have objects to show."""
    for gpu_class in (world.a100, world.t4):
        factories.RateCardFactory(gpu_class=gpu_class, tier="", price_per_gpu_hour=Decimal("2.5"))
    card = factories.RateCardFactory(
        gpu_class=world.t4, tier=Tier.BATCH, price_per_gpu_hour=Decimal(1)
    )
    ledger = Ledger()
    ledger.add(at=hour(2, 10), gpu_hours=3, department=world.marketing, gpu_class=world.t4)
    ledger.add(at=hour(3, 11), gpu_hours=5, department=world.training, gpu_class=world.a100)
    ledger.add(at=hour(4, 12), gpu_hours=1, namespace="team-research")
    billing_services.period_refresh(month=MARCH)
    statement = Statement.objects.get(department=world.marketing, period__month=MARCH)
    billing_services.statement_finalize(statement=statement, user=world.user("finance"))
    adjustment = billing_services.adjustment_create(
        original=statement, amount=Decimal("-1.50"), reason="Goodwill", user=world.user("finance")
    )
    return {"statement": statement, "adjustment": adjustment, "rate_card": card}


@pytest.fixture
def api_schema(world, _same_connection):
    reader = Token.objects.get_or_create(user=world.user("finance"))[0]
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        application,
        config=CONFIG,
        headers={"Authorization": f"Token {reader.key}"},
    )


def _known_objects(world, billing_data, user) -> dict[str, dict]:
    """Path parameters naming objects that exist, by the path's first segment after
    /api/v1/: random ids alone would reach little more than 404. A personal API token is
    the role's own (finance's for anonymous), since nobody reaches another's."""
    return {
        "departments": {"slug": world.marketing.slug},
        "gpu-classes": {"slug": world.t4.slug},
        "job-kinds": {"slug": world.lipsync.slug},
        "jobs": {"id": str(world.manager_job.pk), "name": "result.txt"},
        "off-peak-windows": {"id": world.off_peak.pk},
        "quotas": {"id": world.marketing_quota.pk},
        "service-levels": {"id": world.marketing_sla.pk},
        "rate-cards": {"id": billing_data["rate_card"].pk},
        "statements": {
            "id": billing_data["statement"].pk,
            "line_pk": billing_data["statement"].lines.order_by("pk").first().pk,
        },
        "adjustments": {"id": billing_data["adjustment"].pk},
        "clusters": {"slug": factories.ClusterFactory(slug="prod-eu").slug},
        "worker-pools": {"id": factories.WorkerPoolFactory(namespace="gpu-workers").pk},
        "alert-channels": {"id": _alert_delivery(world).channel_id},
        "alert-deliveries": {"id": _alert_delivery(world).pk},
        "role-mappings": {"id": _role_mapping(world).pk},
        "tokens": {"id": _api_token(user or world.user("finance")).pk},
    }


def _role_mapping(world):
    from accounts.models import RoleMapping

    mapping, _ = RoleMapping.objects.get_or_create(
        group="training-staff", role="member", department=world.training
    )
    return mapping


def _alert_delivery(world):
    """Marketing's e-mail channel and one delivery of it (made once)."""
    from billing.models import AlertChannel, Delivery

    channel, _ = AlertChannel.objects.get_or_create(
        department=world.marketing,
        name="Marketing alerts",
        defaults={"kind": "email", "emails": ["alerts@example.com"]},
    )
    return Delivery.objects.get_or_create(
        channel=channel,
        event_key="quota:1:2026-03:80",
        defaults={"event_type": "quota", "subject": "Quota at 80 %", "text": "At 80 %."},
    )[0]


def _api_token(user):
    """A personal API token of ``user`` (made once)."""
    from accounts import tokens
    from accounts.models import ApiToken

    made = ApiToken.objects.filter(user=user, name="fuzzed").first()
    return made or tokens.api_token_create(user=user, name="fuzzed").token


def _is_date(parameter) -> bool:
    schema = parameter.definition.get("schema", {})
    return parameter.name in DATE_NAMES or schema.get("format") in ("date", "date-time")


def _deep_value(case):
    """``case`` with its JSON body's first value replaced by arrays nested far too deep,
    so that the body is well-formed around it."""
    if isinstance(case.body, dict) and case.body:
        first = sorted(case.body)[0]
        text = json.dumps({**case.body, first: "DEEP-VALUE"}, default=str)
        case.body = text.replace('"DEEP-VALUE"', DEEP_ARRAYS.decode(), 1).encode()
        case.media_type = "application/json"
    return case


def _strategies(operation, known: dict[str, dict]) -> dict:
    """Valid requests, invalid ones, and, where the path names an object, valid requests
    on one that exists; then the hostile input above, one query parameter or the body at
    a time, on an object that exists."""
    strategies = {
        "valid": operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        "invalid": operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    }
    names = {p.name for p in operation.path_parameters}
    parameters = {}
    if names:
        collection = operation.path.removeprefix("/api/v1/").split("/")[0]
        parameters = {k: v for k, v in known[collection].items() if k in names}
        strategies["known object"] = operation.as_strategy(path_parameters=parameters)
    hostile_query = [
        (p.name, value)
        for p in operation.query
        if p.name not in SKIPPED_QUERY
        for value in (HOSTILE_DATES if _is_date(p) else HOSTILE_VALUES)
    ]
    if hostile_query:
        strategies["hostile query"] = st.sampled_from(hostile_query).flatmap(
            lambda item: operation.as_strategy(path_parameters=parameters, query=dict([item]))
        )
    if any(body.media_type == "application/json" for body in operation.body):
        strategies["hostile body"] = st.sampled_from(HOSTILE_BODIES).flatmap(
            lambda body: operation.as_strategy(
                path_parameters=parameters, body=body, media_type="application/json"
            )
        )
        strategies["deep value in a body"] = operation.as_strategy(
            path_parameters=parameters, media_type="application/json"
        ).map(_deep_value)
    return strategies


MANIFESTS_PATH = "/api/v1/cluster/manifests/"


# In place of schemathesis' own YAML reader, under each YAML media type it matches first.
@schemathesis.deserializer(*YAML_MEDIA_TYPES)
def _yaml(ctx, response):
    """The cluster's objects are a multi-document YAML stream (documented as an array of
    objects); any other YAML answer is one document."""
    if ctx.operation is not None and ctx.operation.path == MANIFESTS_PATH:
        return list(yaml.safe_load_all(response.content))
    return yaml.safe_load(response.content)


def _fuzz(strategy, examples: int, headers: dict, server_errors: list) -> None:
    """Send up to ``examples`` requests drawn from ``strategy``; raises the first failure,
    shrunk to its smallest request."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,  # the same cases on every run: a CI failure reproduces locally
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def one(case):
        server_errors.clear()
        # Each request's writes are undone after it, so that every request meets the same
        # data, and one that breaks the transaction does not break those after it.
        savepoint = transaction.savepoint()
        try:
            case.call_and_validate(headers=headers, checks=CHECKS, environ_overrides=CLIENT)
        finally:
            transaction.savepoint_rollback(savepoint)

    one()


def _provider_token(world, request) -> str:
    """An access token of the identity provider for a person whose group the portal maps
    to marketing's manager."""
    from tests.accounts.sign_in import provider_person

    provider = request.getfixturevalue("oidc")
    return provider.access_token(
        provider_person(provider, world.marketing, "sso-manager", "manager")
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_is_documented_and_none_is_a_server_error(
    api_schema, world, billing_data, role, server_errors, _fresh_rate_limits, request
):
    user = world.user(role)
    headers = {}
    # The provider's people read and write as the others do; what is theirs to show is
    # that every operation takes the provider's token, so they try fewer cases.
    examples_cap = None if user is not None else ANONYMOUS_EXAMPLES
    if role.startswith("provider_"):
        headers["Authorization"] = f"Bearer {_provider_token(world, request)}"
    elif user is not None:
        headers["Authorization"] = f"Token {Token.objects.get_or_create(user=user)[0].key}"
    known = _known_objects(world, billing_data, user)
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for kind, strategy in _strategies(operation, known).items():
            try:
                examples = min(EXAMPLES[kind], examples_cap or EXAMPLES[kind])
                _fuzz(strategy, examples, headers, server_errors)
            except (Exception, BaseExceptionGroup) as exc:  # reported with all the others
                failures.append(f"{operation.label} ({kind}): {exc}\n{''.join(server_errors)}")
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
